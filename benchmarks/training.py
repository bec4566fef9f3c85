"""One TAME training step against its limit, and the class-selective AM against computing all K maps, in one run.

    .venv/bin/python -m benchmarks.training                       # ResNet-50 and VGG-16, 224 px, batch 8, CPU
    .venv/bin/python -m benchmarks.training --quick               # 64 px, batch 4: a fast check of the machinery

The limit (docs/METHOD.md, "What a step costs") is what any implementation of the method must do on the bare
classifier: a forward without a graph (labels and features), a forward with gradients on the input, and a backward
into the input (the backbone is frozen, so no weight gradients). Each row times, on the same batch, interleaved
round after round (7 rounds for ResNet-50, 3 for VGG-16, after a warm-up round):

- ``limit``: that, on the classifier alone (feature taps off);
- ``tame``: ``TameModel.training_step`` + backward + optimiser step, as the training loop runs it;
- ``all K``: the same step with the reference's AM, which computes all K class maps and then selects the labels'
  maps (checked here to give the same loss).

``AM alone`` times the AM's forward + backward on fixed feature maps: class-selective, the class-selective fuse as
it was before issue #7 (``concat``), and all K maps.
Random weights (nothing downloaded); results go to ``benchmarks/results/training.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F

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
from tame.engine.optim import build_optimizer
from tame.models import TameModel, create_classifier
from tame.models.loss import tame_loss

LAYERS = {"resnet50": ["layer2", "layer3", "layer4"], "vgg16": ["features.16", "features.23", "features.30"]}
TARGET = 1.15  # a TAME step / the limit
ROUNDS = {"resnet50": 7, "vgg16": 3}  # timed rounds by default: a VGG-16 round takes ~25 s of CPU time at 224 px
CLOCKS = {"cpu": "process CPU time", "wall": "wall time"}


def limit_step(model: TameModel, images: torch.Tensor) -> None:
    """Two forwards and one backward into the input of the bare classifier: the floor of a TAME step."""
    with torch.no_grad():  # outside a taps capture: the hooks record nothing
        labels = model.classifier(images).argmax(dim=1)
    inputs = images.detach().requires_grad_(True)
    F.cross_entropy(model.classifier(inputs), labels).backward()


def all_maps_training_step(model: TameModel, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """``TameModel.training_step`` (model labels, ``batch`` regulariser) as the reference: all K maps, then select."""
    with torch.no_grad():
        logits, features = model.features(images)
    targets = logits.argmax(dim=1)
    regulariser_set = torch.sigmoid(model.attention(features)[:, targets])  # [B, K, S] -> R: [B, B, S]
    own = torch.arange(images.shape[0], device=images.device)
    masks = regulariser_set[own, own].unsqueeze(1)  # [B, 1, S]
    upsampled = F.interpolate(masks, size=images.shape[-2:], mode="bilinear", align_corners=False)
    masked_logits = model.classifier(upsampled * images)  # outside a taps capture: nothing recorded
    return tame_loss(masked_logits, targets, regulariser_set)


VARIANTS = ("limit", "tame", "all K")


def step_function(variant: str, model: TameModel, optimizer: torch.optim.Optimizer, images: torch.Tensor):
    """A call that runs one step of ``variant`` on ``images`` (the TAME variants: loss, backward, optimiser step)."""
    if variant == "limit":
        return lambda: limit_step(model, images)
    losses_of = TameModel.training_step if variant == "tame" else all_maps_training_step

    def step() -> None:
        losses = losses_of(model, images)
        optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        optimizer.step()

    return step


def build(name: str, size: int, device: torch.device, backbone_mode: str = "eval"):
    """(TAME model in training mode with random weights, its optimiser) for ``name``."""
    torch.manual_seed(0)
    model = TameModel(
        create_classifier(name, pretrained=False), LAYERS[name], input_size=size, backbone_mode=backbone_mode
    )
    model = model.to(device).train()
    return model, build_optimizer(model.attention, 1e-4, 5e-4, 0.9)


def am_functions(model: TameModel, images: torch.Tensor) -> dict[str, Callable[[], None]]:
    """The AM alone, forward and backward on the images' fixed features (labels: the predicted classes): the
    class-selective fuse, the fuse before issue #7 (resize + concat sum(C_i) channels, then conv) and all K maps."""
    with torch.no_grad():
        logits, features = model.features(images)
    targets = logits.argmax(dim=1)

    def am_selective() -> None:
        model.attention(features, targets).sum().backward()

    def am_all() -> None:
        model.attention(features)[:, targets].sum().backward()

    def am_concat() -> None:  # the class-selective fuse before issue #7: resize + concat sum(C_i) channels, then conv
        am = model.attention
        F.conv2d(am.fuser_input(features), am.fuser.weight[targets], am.fuser.bias[targets]).sum().backward()

    return {"selective": am_selective, "concat": am_concat, "all K": am_all}


def bench_model(name: str, size: int, batch: int, repeats: int, device: torch.device, backbone_mode: str) -> dict:
    model, optimizer = build(name, size, device, backbone_mode)
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)

    # the same numbers both ways, on one AM state (before any optimiser step)
    state = {k: v.clone() for k, v in model.attention.state_dict().items()}
    ours = {k: float(v.detach()) for k, v in model.training_step(images).items()}
    model.attention.load_state_dict(state)
    theirs = {k: float(v.detach()) for k, v in all_maps_training_step(model, images).items()}
    model.attention.load_state_dict(state)
    gap = max(abs(ours[k] - theirs[k]) / max(abs(theirs[k]), 1e-12) for k in ours)

    am_alone = am_functions(model, images)
    steps = compare(
        {variant: step_function(variant, model, optimizer, images) for variant in VARIANTS},
        repeats,
        device=device,
    )
    am = compare(am_alone, repeats, device=device)
    model.attention.zero_grad(set_to_none=True)
    clocks = ("wall", "cpu")
    ratios = {
        clock: {
            "tame_over_limit": ratio(steps, "tame", "limit", clock),
            "all_k_over_limit": ratio(steps, "all K", "limit", clock),
            "all_k_over_tame": ratio(steps, "all K", "tame", clock),
            "am_all_k_over_selective": ratio(am, "all K", "selective", clock),
            "am_concat_over_selective": ratio(am, "concat", "selective", clock),
        }
        for clock in clocks
    }
    judged = judged_clock(device)
    return {
        "model": name,
        "layers": LAYERS[name],
        "size": size,
        "batch": batch,
        "rounds": repeats,
        "num_classes": model.num_classes,
        "am_resolution": list(model.attention.size),
        "clock": judged,  # the ratios at the top level are of this clock
        **ratios[judged],
        "ratios": ratios,
        "median_s": {clock: {k: v.median_of(clock) for k, v in steps.items()} for clock in clocks},
        "seconds": {clock: {k: getattr(v, clock) for k, v in steps.items()} for clock in clocks},
        "am_alone_median_s": {clock: {k: v.median_of(clock) for k, v in am.items()} for clock in clocks},
        "loss_selective": ours,
        "loss_all_k": theirs,
        "largest_relative_loss_difference": gap,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, help="timed rounds after a warm-up (default: ROUNDS)")
    parser.add_argument("--backbone-mode", default="eval", choices=("eval", "train"))
    add_common_options(parser, "training", "64 px, batch 4")
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch_size = 64, 4
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    device = resolve_device(args.device)

    results = []
    for name in args.models:
        rounds = args.repeats or ROUNDS[name]
        result = bench_model(name, args.size, args.batch_size, rounds, device, args.backbone_mode)
        results.append(result)
        print(
            f"{name}: loss {result['loss_selective']['loss']:.6f} (class-selective) vs "
            f"{result['loss_all_k']['loss']:.6f} (all K maps); largest relative difference "
            f"{result['largest_relative_loss_difference']:.1e}",
            flush=True,
        )
    print_tables(args, device, results)
    report = {
        "machine": machine(device),
        "device": str(device),
        "size": args.size,
        "batch_size": args.batch_size,
        "backbone_mode": args.backbone_mode,
        "target_tame_over_limit": TARGET,
        "results": results,
    }
    print(f"wrote {write_report('training', report, args.out)}")
    return 0


def print_tables(args: argparse.Namespace, device: torch.device, results: list[dict]) -> None:
    """The training step's ratios (judged clock, the other in brackets) and the AM alone, one row per model."""
    clock = judged_clock(device)
    other = "wall" if clock == "cpu" else "cpu"
    print(
        f"\nTraining step, {args.size} px, batch {args.batch_size}, {device} ({torch.get_num_threads()} threads), "
        "interleaved rounds; seconds are medians, ratios medians of per-round ratios, "
        f"of {CLOCKS[clock]} ({CLOCKS[other]} in brackets)"
    )
    rows = []
    for r in results:
        s, w = r["median_s"][clock], r["ratios"][other]
        rows.append(
            [r["model"], r["rounds"], s["limit"], s["tame"], r["tame_over_limit"], f"({w['tame_over_limit']:.3g})"]
            + [f"<= {TARGET}", verdict(r["tame_over_limit"], TARGET), s["all K"], r["all_k_over_limit"]]
            + [r["all_k_over_tame"], f"({w['all_k_over_tame']:.3g})"]
        )
    headers = ["model", "rounds", "limit s", "TAME s", "TAME/limit", "", "target", "", "all-K s", "all-K/limit"]
    print(table([*headers, "all-K/TAME", ""], rows))
    print(f"\nAM alone (forward + backward on fixed features), {CLOCKS[clock]}:")
    am_rows = [
        [r["model"]]
        + [1e3 * r["am_alone_median_s"][clock][k] for k in ("selective", "concat", "all K")]
        + [r["am_concat_over_selective"], r["am_all_k_over_selective"]]
        for r in results
    ]
    headers = ["model", "selective ms", "concat ms", "all K ms", "concat/selective", "all-K/selective"]
    print(table(headers, am_rows))
    print(
        "(selective: each branch projected on the labels' fuser weights, then resized; concat: the selective fuse "
        "before issue #7, all sum(C_i) channels resized and concatenated, then a conv with the gathered weights)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
