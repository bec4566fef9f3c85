"""LR range test: sweep the LR exponentially over one pass of the training data and suggest a max LR.

    tame lr-find --config configs/resnet50.yaml
    torchrun --standalone --nproc_per_node=4 -m tame.cli lr-find --config configs/resnet50.yaml
    make lr-find MODEL=resnet50 GPUS=4

As the reference's ``lr_finder.py``: SGD with the training's two parameter groups (biases at 2x), the LR going
from ``--start-lr`` to ``--end-lr`` over the pass, the loss smoothed exponentially (bias-corrected), stopping
once the smoothed loss exceeds 4x its best. Writes ``lr_find.json`` and ``lr_find.png`` to the output folder and
prints the suggested ``train.max_lr``: a tenth of the LR at the minimum of the smoothed loss. A sweep whose loss is
still falling at its end (or that is too short) suggests nothing and says why: sweep further (a larger --end-lr,
more --steps). The AM trained here is thrown away.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from tame.config import load_config
from tame.engine.lr_suggestion import format_lr

if TYPE_CHECKING:
    from tame.engine.lr_find import LrFindResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (configs/*.yaml), as for `tame train`")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.batch_size=64")
    parser.set_defaults(intermixed="overrides")  # overrides may also follow the options
    parser.add_argument("--start-lr", type=float, default=1e-8, help="first LR of the sweep (default 1e-8)")
    parser.add_argument("--end-lr", type=float, default=10.0, help="last LR of the sweep (default 10)")
    parser.add_argument(
        "--steps", type=int, default=0, help="batches to sweep over (default: one pass, or train.max_steps_per_epoch)"
    )
    parser.add_argument("--smoothing", type=float, default=0.98, help="exponential smoothing of the loss")
    parser.add_argument("--out", help="folder for lr_find.json and lr_find.png (default: output_dir/lr_find)")
    parser.add_argument(
        "--check", action="store_true", help="only check the run as `tame train --check` does, then exit"
    )
    parser.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="with --check: the processes (GPUs) per node torchrun will start (default: as this process was launched)",
    )


def run(args: argparse.Namespace) -> int:
    from tame.distributed import resolve_launch
    from tame.engine.lr_find import lr_range_test

    cfg = load_config(args.config, args.overrides)
    if args.check:  # the sweep trains as `tame train` does: the same checks (launch/torchrun.sh runs them first)
        from tame.commands.train import check_run

        return check_run(cfg, args.config, args.nproc)
    result = lr_range_test(
        cfg,
        start_lr=args.start_lr,
        end_lr=args.end_lr,
        steps=args.steps,
        smoothing=args.smoothing,
        output_dir=Path(args.out) if args.out else None,
    )
    if resolve_launch().rank == 0:  # every rank has the result; one prints it
        print(summary(result), flush=True)
    return 0


def summary(result: LrFindResult) -> str:
    """What the sweep found, LRs written as ``3.2e-3``; without a suggestion, why (and what to sweep instead)."""
    found = f"minimum of the smoothed loss at {format_lr(result.minimum_lr)}"
    if result.steepest_lr is not None:
        found += f", steepest descent at {format_lr(result.steepest_lr)}"
    found += f"; stopped: {result.stopped}"
    if result.suggested_max_lr is None:
        return f"no suggested max LR: {result.suggestion_reason} ({found})"
    suggested = format_lr(result.suggested_max_lr)
    return f"suggested max LR {suggested}, a tenth of the minimum ({found}); train with train.max_lr={suggested}"
