"""AD/IC evaluation speed: the batched implementation against the reference's one-image-at-a-time loop, in one run.

    .venv/bin/python -m benchmarks.evaluation                     # ResNet-50, 224 px, 8 images, batch 8, CPU
    .venv/bin/python -m benchmarks.evaluation --device cuda --batch-size 64 --images 128
    .venv/bin/python -m benchmarks.evaluation --quick             # 64 px

Same model (random weights, nothing downloaded), same images, same device. The reference style is the published
``eval_script.py``, written out here independently of ``tame.metrics``: per image, the whole model with its AM (all K
class maps) runs on the image, the predicted class's map is min-max normalised and upsampled, and for each of the
three levels the top pixels are kept (the reference's rule for ties) and the masked image goes through the model and
its AM again. The batched path
(``tame eval``: :func:`tame.evaluation.evaluate`) runs one forward per batch for the logits and the predicted
class's map only, then the 3·B masked copies through the classifier alone. Both give the same AD/IC (printed side
by side). ``limit`` is what any implementation must run: the bare classifier on every image and on its three
masked copies, in the same batches. The three are timed interleaved for ``--repeats`` rounds after a warm-up.
Results go to ``benchmarks/results/evaluation.json``.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F

from benchmarks.harness import (
    Timing,
    add_common_options,
    compare,
    judged_clock,
    machine,
    ratio,
    resolve_device,
    set_threads,
    table,
    verdict,
    write_report,
)
from tame.evaluation import evaluate
from tame.methods import TameExplainer
from tame.models import TameModel, create_classifier

LEVELS = (1.0, 0.5, 0.15)
TARGETS = {"cpu": 3.0, "cuda": 20.0}  # batched / reference images per second


@torch.no_grad()
def reference_style(model: TameModel, images: torch.Tensor) -> dict[str, float]:
    """The published loop: one image at a time, all K maps, the model and its AM re-run on every masked input."""
    drops, increases = dict.fromkeys(LEVELS, 0.0), dict.fromkeys(LEVELS, 0.0)
    for x in images.split(1):  # [1, 3, H, W]
        logits, features = model.features(x)
        all_maps = model.attention(features)  # [1, K, h, w]: the reference model computes every class map
        probabilities = torch.softmax(logits, dim=1)[0]
        k = int(probabilities.argmax())
        y = float(probabilities[k])
        class_map = all_maps[0, k]
        class_map = (class_map - class_map.min()) / (class_map.max() - class_map.min())
        class_map = F.interpolate(class_map[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)
        flat = class_map.flatten()
        for p in LEVELS:
            kept = drop_as_the_authors(flat, p)
            masked_logits, masked_features = model.features(x * kept.view_as(class_map))
            model.attention(masked_features)  # the reference re-runs the AM on the masked image
            o = float(torch.softmax(masked_logits, dim=1)[0, k])
            drops[p] += max(0.0, y - o) / y
            increases[p] += float(o > y)
    count = images.shape[0]
    return {
        f"{metric}({p * 100:g}%)": 100 * sums[p] / count
        for p in LEVELS
        for metric, sums in (("AD", drops), ("IC", increases))
    }


def drop_as_the_authors(flat: torch.Tensor, fraction: float) -> torch.Tensor:
    """The top pixels of one flat map as the reference's drop_Npercent keeps them (docs/METHOD.md, "AD and IC"): with
    q = 1 - fraction, values below the int(q·n)-th smallest t become 0, then the first pixels equal to t in raster
    order while more than ceil((1 - q)·n) are positive."""
    if fraction == 1:
        return flat.clone()
    q = 1 - fraction
    threshold = torch.kthvalue(flat, int(q * flat.numel())).values
    kept = torch.where(flat < threshold, torch.zeros_like(flat), flat)
    surplus = int((kept > 0).sum()) - math.ceil((1 - q) * flat.numel())
    if surplus >= 1:
        kept[torch.nonzero(kept == threshold)[:surplus, 0]] = 0
    return kept


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--layers", nargs="+", default=["layer2", "layer3", "layer4"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=8, help="images evaluated per round")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (interleaved) after a warm-up")
    add_common_options(parser, "evaluation", "64 px")
    args = parser.parse_args(argv)
    if args.quick:
        args.size = 64
    return args


def time_the_three(args: argparse.Namespace, device: torch.device) -> tuple[dict, dict[str, Timing]]:
    """The reference loop, the batched evaluation and the limit on the same random images, timed interleaved after
    a warm-up; (their AD/IC: reference and batched, their timings)."""
    torch.manual_seed(0)
    model = TameModel(create_classifier(args.model, pretrained=False), args.layers, input_size=args.size)
    model = model.to(device).eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.images + args.batch_size, 3, args.size, args.size, generator=generator).to(device)
    warm_up, images = images[: args.batch_size], images[args.batch_size :]
    explainer = TameExplainer(model)
    batches = [(b, torch.zeros(len(b), dtype=torch.long, device=device)) for b in images.split(args.batch_size)]

    reference_style(model, warm_up[:1])
    evaluate(explainer, [(warm_up, torch.zeros(len(warm_up), dtype=torch.long, device=device))])
    numbers: dict[str, dict[str, float]] = {}

    def reference() -> None:
        numbers["reference"] = reference_style(model, images)

    def batched() -> None:
        columns = evaluate(explainer, batches).columns()
        numbers["batched"] = {c: columns[c] for c in numbers.get("reference", columns) if c != "ms/img"}

    @torch.no_grad()
    def limit() -> None:  # what any implementation must run: the classifier on each image and its 3 masked copies
        for images_, _ in batches:
            model.predict(images_)
            model.predict(images_.repeat(len(LEVELS), 1, 1, 1))

    limit()
    functions = {"reference": reference, "batched": batched, "limit": limit}
    return numbers, compare(functions, args.repeats, warmup=0, device=device)


def summarise(timings: dict[str, Timing], numbers: dict, images: int, device: torch.device) -> dict:
    """Speed-ups on both clocks (the judged one first), images per second, the target and the AD/IC gap."""
    clock = judged_clock(device)
    return {
        "clock": clock,
        "other": "wall" if clock == "cpu" else "cpu",
        "speedups": {c: ratio(timings, "reference", "batched", c) for c in ("wall", "cpu")},
        "over_limit": {c: ratio(timings, "batched", "limit", c) for c in ("wall", "cpu")},
        "limit_speedups": {c: ratio(timings, "reference", "limit", c) for c in ("wall", "cpu")},
        "largest_gap": max(abs(numbers["batched"][c] - numbers["reference"][c]) for c in numbers["reference"]),
        "rates": {name: images / t.median for name, t in timings.items()},
        "target": TARGETS.get(device.type, TARGETS["cpu"]),
    }


def print_results(args: argparse.Namespace, device: torch.device, numbers: dict, s: dict) -> None:
    """The AD/IC of both ways side by side, then images/s and speed-ups against the target."""
    clock, other = s["clock"], s["other"]
    rates, speedups, limit_speedups = s["rates"], s["speedups"], s["limit_speedups"]
    print(
        f"AD/IC evaluation, {args.model} {args.size} px, {args.images} images, {device} "
        f"({torch.get_num_threads()} threads), {args.repeats} interleaved rounds; images/s from the median wall "
        f"time; speed-up: median of per-round ratios of {clock} time ({other} time in brackets)"
    )
    print(table(["", *numbers["reference"]], [[name, *numbers[name].values()] for name in ("reference", "batched")]))
    print(f"largest AD/IC difference: {s['largest_gap']:.2g} percentage points\n")
    print(
        table(
            ["way", "images/s", "speed-up", "", "target", ""],
            [
                ["reference (one image, all K maps, AM re-run)", rates["reference"], 1.0, "", "", ""],
                [f"batched (batch {args.batch_size})", rates["batched"], speedups[clock], f"({speedups[other]:.3g})"]
                + [f">= {s['target']:g}", verdict(speedups[clock], s["target"], at_most=False)],
                ["limit: 4 bare forwards per image, same batches", rates["limit"], limit_speedups[clock]]
                + [f"({limit_speedups[other]:.3g})", "", ""],
            ],
        )
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    device = resolve_device(args.device)
    numbers, timings = time_the_three(args, device)
    s = summarise(timings, numbers, args.images, device)
    print_results(args, device, numbers, s)
    report = {
        "machine": machine(device),
        "device": str(device),
        "model": args.model,
        "layers": args.layers,
        "size": args.size,
        "images": args.images,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "seconds": {name: t.wall for name, t in timings.items()},
        "cpu_seconds": {name: t.cpu for name, t in timings.items()},
        "reference_images_per_s": s["rates"]["reference"],
        "batched_images_per_s": s["rates"]["batched"],
        "clock": s["clock"],  # the clock of "speedup"
        "speedup": s["speedups"][s["clock"]],
        "speedups": s["speedups"],
        "batched_over_limit": s["over_limit"],  # the batched evaluation's time / the limit's
        "reference_over_limit": s["limit_speedups"],  # the most any batched evaluation could gain
        "target_speedup": s["target"],
        "reference": numbers["reference"],
        "batched": numbers["batched"],
        "largest_difference": s["largest_gap"],
    }
    print(f"wrote {write_report('evaluation', report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
