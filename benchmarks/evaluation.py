"""AD/IC evaluation speed: the batched implementation against the reference's one-image-at-a-time loop, in one run.

    .venv/bin/python -m benchmarks.evaluation [--model resnet50] [--size 224] [--images 16] [--batch-size 16]

Same model (random weights, nothing downloaded), same images, same device (CPU unless --device cuda). The
reference style is the published ``eval_script.py``: per image, the whole model with its AM (all K class maps)
runs once on the image and again on each of the three masked copies. The batched path (``tame eval``) runs one
forward per batch for logits and the predicted class's map, then the 3·B masked copies through the classifier
alone. A warm-up image/batch is not timed. Results go to ``benchmarks/results/evaluation.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from tame.baselines import TameExplainer
from tame.engine.evaluate import evaluate
from tame.metrics import ad_ic
from tame.models import TameModel, create_classifier, explanation_maps

RESULTS = Path(__file__).resolve().parent / "results"


@torch.no_grad()
def reference_style(model: TameModel, images: torch.Tensor) -> dict[str, float]:
    """The published loop: one image at a time, all K maps, the model and its AM re-run on every masked input."""
    drops, increases = {p: 0.0 for p in ad_ic.LEVELS}, {p: 0.0 for p in ad_ic.LEVELS}
    for x in images.split(1):
        logits, features = model.features(x)
        all_maps = model.attention(features)  # [1, K, h, w]: the reference model's forward computes every class
        probabilities = torch.softmax(logits, dim=1)
        k = probabilities.argmax(dim=1)
        y = probabilities[0, k]
        class_map = explanation_maps(all_maps[:, k], tuple(x.shape[-2:]))
        for p in ad_ic.LEVELS:
            masked = x * ad_ic.keep_top_fraction(class_map, p).unsqueeze(1)
            masked_logits, masked_features = model.features(masked)
            model.attention(masked_features)  # the reference re-runs the AM on the masked image
            o = torch.softmax(masked_logits, dim=1)[0, k]
            drops[p] += float((y - o).clamp(min=0) / y)
            increases[p] += float(o > y)
    count = images.shape[0]
    return {f"AD({ad_ic.level_name(p)})": 100 * drops[p] / count for p in ad_ic.LEVELS} | {
        f"IC({ad_ic.level_name(p)})": 100 * increases[p] / count for p in ad_ic.LEVELS
    }


def timed(function, device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--layers", nargs="+", default=["layer2", "layer3", "layer4"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(RESULTS / "evaluation.json"))
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    model = TameModel(create_classifier(args.model, pretrained=False), args.layers, input_size=args.size)
    model = model.to(device).eval()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.images + args.batch_size, 3, args.size, args.size, generator=generator).to(device)
    warm_up, images = images[: args.batch_size], images[args.batch_size :]
    explainer = TameExplainer(model)
    batches = [(b, torch.zeros(len(b), dtype=torch.long, device=device)) for b in images.split(args.batch_size)]

    reference_style(model, warm_up[:1])
    reference, reference_seconds = timed(lambda: reference_style(model, images), device)
    evaluate(explainer, [(warm_up, torch.zeros(len(warm_up), dtype=torch.long, device=device))])
    batched, batched_seconds = timed(lambda: evaluate(explainer, batches), device)

    numbers = {column: value for column, value in batched.columns().items() if column != "ms/img"}
    largest_gap = max(abs(numbers[c] - reference[c]) for c in reference)
    report = {
        "model": args.model,
        "layers": args.layers,
        "size": args.size,
        "images": args.images,
        "batch_size": args.batch_size,
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "reference_images_per_s": args.images / reference_seconds,
        "batched_images_per_s": args.images / batched_seconds,
        "speedup": reference_seconds / batched_seconds,
        "reference": reference,
        "batched": numbers,
        "largest_difference": largest_gap,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"{args.model} {args.size}px, {args.images} images, {device} ({torch.get_num_threads()} threads)")
    print(f"  reference style (one image, all maps, AM re-run): {report['reference_images_per_s']:7.2f} images/s")
    print(f"  batched (batch {args.batch_size}):                        {report['batched_images_per_s']:7.2f} images/s")
    print(f"  speed-up: {report['speedup']:.2f}x; largest AD/IC difference {largest_gap:.4f} percentage points")
    print(f"  wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
