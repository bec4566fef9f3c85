"""LR range test: sweep the LR exponentially over one pass of the training data and suggest a max LR.

    tame lr-find --config configs/resnet50.yaml
    torchrun --standalone --nproc_per_node=4 -m tame.cli lr-find --config configs/resnet50.yaml
    make lr-find MODEL=resnet50 GPUS=4

As the reference's ``lr_finder.py``: SGD with the training's two parameter groups (biases at 2x), the LR going
from ``--start-lr`` to ``--end-lr`` over the pass, the loss smoothed exponentially (bias-corrected), stopping
once the smoothed loss exceeds 4x its best. Writes ``lr_find.json`` and ``lr_find.png`` to the output folder and
prints the suggested ``train.max_lr``: the LR at the minimum of the smoothed loss (the reference's advice: pick
the minimum of the curve). The AM trained here is thrown away.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

from tame import distributed
from tame.config import Config, expand_path, load_config
from tame.distributed import Dist, all_reduce_mean
from tame.engine.optim import build_optimizer, set_lr
from tame.engine.run_log import warn
from tame.engine.train import TrainingSetup, check_data_paths, check_world_size, prepare
from tame.errors import TameError
from tame.io import write_text_atomic

RESULT_FILE = "lr_find.json"
PLOT_FILE = "lr_find.png"


@dataclass
class LrFindResult:
    lrs: list[float] = field(default_factory=list)  # the weights' LR at each step (biases: 2x)
    loss: list[float] = field(default_factory=list)  # the loss of each step (mean over ranks)
    smoothed_loss: list[float] = field(default_factory=list)
    suggested_max_lr: float | None = None
    stopped: str = "end of pass"  # or: diverged, non-finite loss


def lr_range_test(
    cfg: Config,
    dist: Dist,
    run: TrainingSetup,
    *,
    start_lr: float,
    end_lr: float,
    steps: int,
    smoothing: float = 0.98,
    diverge: float = 4.0,
) -> LrFindResult:
    """Train for up to ``steps`` batches with the LR rising from ``start_lr`` to ``end_lr`` (every rank calls this)."""
    model = run.model
    optimizer = build_optimizer(model.attention, start_lr, cfg.train.weight_decay, cfg.train.momentum)
    factor = (end_lr / start_lr) ** (1.0 / max(steps - 1, 1))
    result = LrFindResult()
    average, best = 0.0, math.inf
    run.loader.set_epoch(0)
    model.train()
    batches = islice(run.loader, steps)
    if dist.is_main:
        from tqdm.auto import tqdm

        batches = tqdm(batches, total=steps, unit="step", desc="lr-find", dynamic_ncols=True, mininterval=1.0)
    for i, (images, labels) in enumerate(batches, start=1):
        lr = start_lr * factor ** (i - 1)
        set_lr(optimizer, lr)
        images = images.contiguous(memory_format=run.memory_format)  # [B, 3, H, W] in [0, 1]
        with run.autocast:
            losses = model.training_step(images, labels, attention=run.attention)
        loss = all_reduce_mean(dist, losses["loss"].detach().float()).item()  # the same number on every rank
        if not math.isfinite(loss):
            result.stopped = "non-finite loss"
            break
        average = smoothing * average + (1 - smoothing) * loss
        smoothed = average / (1 - smoothing**i)
        result.lrs.append(lr)
        result.loss.append(loss)
        result.smoothed_loss.append(smoothed)
        if i > 1 and smoothed > diverge * best:
            result.stopped = "diverged"
            break
        best = min(best, smoothed)
        if dist.is_main:
            batches.set_postfix(lr=f"{lr:.2e}", loss=f"{smoothed:.4g}", refresh=False)
        optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(losses["loss"]).backward()
        run.scaler.step(optimizer)
        run.scaler.update()
    if result.smoothed_loss:
        lowest = min(range(len(result.smoothed_loss)), key=result.smoothed_loss.__getitem__)
        result.suggested_max_lr = result.lrs[lowest]
    return result


def write_result(result: LrFindResult, cfg: Config, output_dir: Path) -> tuple[Path, Path]:
    """``lr_find.json`` (the curve, the suggestion, the config) and ``lr_find.png`` in ``output_dir``."""
    from tame.viz.curves import plot_lr_range

    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / RESULT_FILE
    write_text_atomic(json_path, json.dumps({**asdict(result), "config": asdict(cfg)}, indent=1))
    title = f"LR range test: {cfg.model.name} {cfg.model.version}, batch {cfg.data.batch_size}"
    plot_path = plot_lr_range(
        result.lrs, result.smoothed_loss, result.suggested_max_lr, output_dir / PLOT_FILE, title=title
    )
    return json_path, plot_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (configs/*.yaml), as for `tame train`")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.batch_size=64")
    parser.add_argument("--start-lr", type=float, default=1e-8, help="first LR of the sweep (default 1e-8)")
    parser.add_argument("--end-lr", type=float, default=10.0, help="last LR of the sweep (default 10)")
    parser.add_argument(
        "--steps", type=int, default=0, help="batches to sweep over (default: one pass, or train.max_steps_per_epoch)"
    )
    parser.add_argument("--smoothing", type=float, default=0.98, help="exponential smoothing of the loss")
    parser.add_argument("--out", help="folder for lr_find.json and lr_find.png (default: output_dir/lr_find)")


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    if not 0 < args.start_lr < args.end_lr:
        raise TameError(f"--start-lr {args.start_lr} and --end-lr {args.end_lr}: need 0 < start < end")
    if args.steps < 0:
        raise TameError(f"--steps {args.steps}: must not be negative")
    if not 0 <= args.smoothing < 1:
        raise TameError(f"--smoothing {args.smoothing}: must be in [0, 1)")
    output_dir = Path(args.out) if args.out else expand_path(cfg.output_dir, "output_dir") / "lr_find"
    data_paths = check_data_paths(cfg)
    dist = distributed.setup(cfg.train.device)
    try:
        check_world_size(cfg, dist.world_size)
        setup = prepare(cfg, dist, data_paths=data_paths)
        steps = min(args.steps or setup.steps_per_epoch, len(setup.loader))
        result = lr_range_test(
            cfg, dist, setup, start_lr=args.start_lr, end_lr=args.end_lr, steps=steps, smoothing=args.smoothing
        )
        if dist.is_main:
            json_path, plot_path = write_result(result, cfg, output_dir)
            if result.suggested_max_lr is None:
                raise TameError(f"the LR range test recorded no finite loss ({result.stopped}); see {json_path}")
            if result.stopped == "end of pass" and result.suggested_max_lr == result.lrs[-1]:
                warn(
                    "the loss was still falling at the end of the sweep, so the suggestion is its last LR; sweep "
                    "further (a larger --end-lr, more --steps or a longer list)"
                )
            print(
                f"tame: suggested max LR {result.suggested_max_lr:.3g} (minimum of the smoothed loss; stopped: "
                f"{result.stopped}); train with train.max_lr={result.suggested_max_lr:.3g}\n"
                f"tame: curve in {plot_path} and {json_path}",
                flush=True,
            )
    finally:
        distributed.cleanup()
    return 0
