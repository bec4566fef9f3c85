"""Explanation latency per image on one backbone: TAME against a bare forward and the baselines, in one run.

    .venv/bin/python -m benchmarks.latency                  # ResNet-50, 224 px, one image per call, CPU
    .venv/bin/python -m benchmarks.latency --full           # also Score-CAM and RISE in full (minutes per image)
    .venv/bin/python -m benchmarks.latency --quick          # 64 px

``forward`` is the bare classifier (no graph); ``tame`` is ``TameModel.explain`` (one forward with the feature taps,
the AM, the predicted class's map); Grad-CAM and Grad-CAM++ (pytorch-grad-cam, target layer = the last TAME layer)
are a forward and a backward. These are timed interleaved, round after round.

Score-CAM (one forward per channel of the target layer: 2048 for ResNet-50's ``layer4``) and RISE (4000 masked
forwards) take minutes per image on a CPU. By default each is run through the same code on a slice of its work
(Score-CAM on the first n channels, RISE with n masks, for two values of n) and the time is extrapolated linearly
to the full count, which is how their cost grows (one batch of masked forwards per ``batch_size`` channels or masks);
the table marks these ``scaled``. ``--full`` measures them in full instead.
Random weights (nothing downloaded); results go to ``benchmarks/results/latency.json``.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.harness import (
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
from tame.methods import Rise, ScoreCam, create_explainer
from tame.models import Classifier, TameModel, create_classifier

TARGET = 1.2  # TAME / a bare forward
RISE_MASKS = 4000
UNIT = 64  # Score-CAM's and RISE's masked images per forward (their default batch size)


class PartialScoreCam(ScoreCam):
    """Score-CAM on the first ``channels`` channels of its target layer: the library's code on a slice of the work."""

    def __init__(self, classifier: Classifier, layer: str, channels: int, batch_size: int = 64) -> None:
        super().__init__(classifier, layer, batch_size)
        self.channels = channels

    def _reshape(self, image_hw: tuple[int, int]):
        to_map = super()._reshape(image_hw)
        return lambda output: to_map(output)[:, : self.channels]


def scaled_seconds(
    build, counts: tuple[int, int], full: int, images: torch.Tensor, repeats: int, device: torch.device
) -> dict:
    """Time ``build(n).explain(images)`` for the two ``counts`` and extrapolate linearly to ``full`` (both clocks)."""
    explainers = {n: build(n) for n in counts}
    timings = compare({n: (lambda e=e: e.explain(images)) for n, e in explainers.items()}, repeats, device=device)
    out = {"counts": list(counts), "full_count": full}
    for clock in ("wall", "cpu"):
        (n1, t1), (n2, t2) = ((n, timings[n].median_of(clock)) for n in counts)
        out[clock] = {"median_s": [t1, t2], "seconds": t1 + (t2 - t1) / (n2 - n1) * (full - n1)}
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--layers", nargs="+", default=["layer2", "layer3", "layer4"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=1, help="images per explain call (latency: 1)")
    parser.add_argument("--repeats", type=int, help="timed rounds of the fast methods after a warm-up (default 40)")
    parser.add_argument("--slow-repeats", type=int, default=2, help="timed rounds of each Score-CAM / RISE slice")
    parser.add_argument("--full", action="store_true", help="run Score-CAM and RISE in full (no extrapolation)")
    add_common_options(parser, "latency", "64 px, 5 rounds unless --repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.size = 64
    args.repeats = args.repeats or (5 if args.quick else 40)
    return args


def time_slow_methods(
    args: argparse.Namespace, model: TameModel, images: torch.Tensor, device: torch.device, measured: dict
) -> dict:
    """Score-CAM and RISE, scaled from two slices of their work (and measured in full with ``--full``); their
    seconds, ratios to the forward and how they were found go into ``measured``; returns the slices' details."""
    seconds, ratios, how = measured["seconds"], measured["ratios"], measured["how"]
    layer = model.layers[-1]
    channels = model.feature_shapes[-1][0]
    slow = {
        "scorecam": (lambda n: PartialScoreCam(model.classifier, layer, n), channels),
        "rise": (lambda n: Rise(model.classifier, num_masks=n), RISE_MASKS),
    }
    details = {}
    for name, (build, full) in slow.items():
        counts = (UNIT, 3 * UNIT) if full > 3 * UNIT else (full // 2, full)
        details[name] = scaled_seconds(build, counts, full, images, args.slow_repeats, device)
        how[name] = "scaled"
        times = {c: details[name][c]["seconds"] for c in ("wall", "cpu")}
        if args.full:
            whole = create_explainer(name, model, **({"num_masks": full} if name == "rise" else {}))
            timing = compare({name: lambda e=whole: e.explain(images)}, 1, warmup=0, device=device)[name]
            times = {c: timing.median_of(c) for c in ("wall", "cpu")}
            how[name] = "measured"
            details[name]["measured_s"] = times
        for c in ("wall", "cpu"):
            seconds[c][name] = times[c]
            ratios[c][name] = times[c] / seconds[c]["forward"]
    return details


def print_results(args: argparse.Namespace, device: torch.device, model: TameModel, clock: str, measured: dict) -> None:
    seconds, ratios, how = measured["seconds"], measured["ratios"], measured["how"]
    other = "wall" if clock == "cpu" else "cpu"
    print(
        f"Explanation latency, {args.model} {args.size} px, {args.batch_size} image(s) per call, {device} "
        f"({torch.get_num_threads()} threads); fast methods: {args.repeats} interleaved rounds; medians of "
        f"{clock} time ({other} time in brackets)"
    )
    rows = []
    for name in seconds[clock]:
        target = f"<= {TARGET}" if name == "tame" else ""
        check = verdict(ratios[clock][name], TARGET) if name == "tame" else ""
        ms = 1e3 * seconds[clock][name] / args.batch_size
        rows.append([name, ms, ratios[clock][name], f"({ratios[other][name]:.3g})", target, check, how[name]])
    print(table(["method", "ms/image", "x forward", "", "target", "", "how"], rows))
    print(
        f"(Score-CAM: {model.feature_shapes[-1][0]} channels of {model.layers[-1]}; RISE: {RISE_MASKS} masks; "
        f"scaled = timed on {UNIT} and {3 * UNIT} and extrapolated linearly)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    device = resolve_device(args.device)

    torch.manual_seed(0)
    model = TameModel(create_classifier(args.model, pretrained=False), args.layers, input_size=args.size)
    model = model.to(device).eval()
    images = torch.rand(args.batch_size, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    images = images.to(device)
    explainers = {name: create_explainer(name, model) for name in ("tame", "gradcam", "gradcam++")}

    @torch.no_grad()
    def forward() -> None:
        model.predict(images)

    fast = compare(
        {"forward": forward} | {name: (lambda e=e: e.explain(images)) for name, e in explainers.items()},
        args.repeats,
        device=device,
    )
    clock = judged_clock(device)
    measured = {
        "seconds": {c: {name: timing.median_of(c) for name, timing in fast.items()} for c in ("wall", "cpu")},
        "ratios": {c: {name: ratio(fast, name, "forward", c) for name in fast} for c in ("wall", "cpu")},
        "how": dict.fromkeys(fast, "measured"),
    }
    details = time_slow_methods(args, model, images, device, measured)
    print_results(args, device, model, clock, measured)
    report = {
        "machine": machine(device),
        "device": str(device),
        "model": args.model,
        "layers": args.layers,
        "size": args.size,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "target_tame_over_forward": TARGET,
        "clock": clock,  # the clock of "ms_per_image" and "over_forward"
        "ms_per_image": {name: 1e3 * t / args.batch_size for name, t in measured["seconds"][clock].items()},
        "over_forward": measured["ratios"][clock],
        "how": measured["how"],
        "ms_per_image_by_clock": {
            c: {n: 1e3 * t / args.batch_size for n, t in v.items()} for c, v in measured["seconds"].items()
        },
        "over_forward_by_clock": measured["ratios"],
        "seconds": {name: t.wall for name, t in fast.items()},
        "cpu_seconds": {name: t.cpu for name, t in fast.items()},
        "slow_methods": details,
    }
    print(f"wrote {write_report('latency', report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
