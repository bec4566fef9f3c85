"""A TAME training step beside timm's own ResNet-50 training step, in one process, on the same batch.

    .venv/bin/python -m benchmarks.timm_step --device cuda               # 224 px, batch 256, bf16, channels_last
    .venv/bin/python -m benchmarks.timm_step --device cpu --quick        # 64 px, batch 4: a check of the machinery

Both steps run as a training loop runs them, interleaved round after round (``benchmarks.harness.compare``):

- ``timm``: timm's ResNet-50 trained as a whole (``timm.create_model``; forward, cross-entropy, backward into every
  weight, SGD with momentum), the step every ImageNet training script runs;
- ``tame``: TAME on the same ResNet-50 (frozen; feature taps layer2-4), ``TameModel.training_step`` + backward into
  the AM + the AM's optimiser step, as ``tame.engine.train`` runs it (the backbone in channels_last, as
  ``train.channels_last``).

Same images, same batch, bf16 autocast (``--amp off``: float32) and channels_last on both. The ratio ``tame / timm``
says what a TAME step costs in units of a plain training step of its classifier on this machine: a GPU number of
TAME's alone means little without it. Random weights (nothing downloaded); results in
``benchmarks/results/timm_step.json``.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext

import timm
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
    write_report,
)
from tame.engine.optim import build_optimizer
from tame.models import TameModel, create_classifier

LAYERS = ["layer2", "layer3", "layer4"]


def timm_step(device: torch.device, images: torch.Tensor, labels: torch.Tensor, autocast):
    """timm's ResNet-50, every weight trained: forward, cross-entropy, backward, SGD (momentum 0.9)."""
    torch.manual_seed(0)
    model = timm.create_model("resnet50", pretrained=False).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def tame_step(device: torch.device, images: torch.Tensor, autocast):
    """TAME on a frozen ResNet-50: the training step (model labels), backward into the AM, the AM's optimiser."""
    torch.manual_seed(0)
    model = TameModel(create_classifier("resnet50", pretrained=False), LAYERS, input_size=images.shape[-1])
    model = model.to(device).train()
    model.classifier.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model.attention, 1e-4, 5e-4, 0.9)

    def step() -> None:
        with autocast:
            loss = model.training_step(images)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser, "timm_step", "64 px, batch 4, 2 rounds after 1 warm-up", device="cuda", threads=0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds after the warm-up rounds")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--amp", default="bf16", choices=("bf16", "off"))
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch_size, args.repeats, args.warmup = 64, 4, 2, 1
    set_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if args.amp == "bf16" else nullcontext()
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch_size, 3, args.size, args.size, generator=generator).to(device)
    images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, 1000, (args.batch_size,), generator=generator).to(device)

    steps = {"timm": timm_step(device, images, labels, autocast), "tame": tame_step(device, images, autocast)}
    timings = compare(steps, args.repeats, warmup=args.warmup, device=device)
    clock = judged_clock(device)
    over = ratio(timings, "tame", "timm", clock)
    rates = {name: args.batch_size / timing.median_of(clock) for name, timing in timings.items()}
    print(
        f"ResNet-50 training step, {args.size} px, batch {args.batch_size}, {args.amp}, channels_last, {device}; "
        f"{args.repeats} interleaved rounds; medians of {clock} time; ratio: median of per-round tame / timm"
    )
    rows = [[name, timings[name].median_of(clock), rates[name]] for name in steps]
    print(table(["step", f"seconds ({clock})", "images/s"], rows))
    print(f"tame / timm: {over:.3f} (a TAME step costs {over:.2f} timm ResNet-50 training steps)")
    report = {
        "machine": machine(device),
        "device": str(device),
        "size": args.size,
        "batch": args.batch_size,
        "amp": args.amp,
        "rounds": args.repeats,
        "clock": clock,
        "tame_over_timm": over,
        "images_per_s": rates,
        "seconds": {name: getattr(timing, clock) for name, timing in timings.items()},
    }
    print(f"wrote {write_report('timm_step', report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
