"""Train the attention mechanism: ``tame train --config configs/resnet50.yaml [key=value ...]``.

One process (a GPU or the CPU):  tame train --config configs/synthetic.yaml train.epochs=2
Several GPUs on one node:        torchrun --standalone --nproc_per_node=4 -m tame.cli train --config CONFIG
                                 (or: make train MODEL=resnet50 GPUS=4)
Killed or requeued? Run the same command again: train.resume=auto continues from the newest good checkpoint.
Stopped by SIGTERM or SIGUSR1 (a cluster's preemption): a checkpoint of the current step, then exit 143 (0 under
torchrun, which would restart the workers otherwise; launch/README.md, "Exit status").
"""

from __future__ import annotations

import argparse
import logging

from tame.config import Config, load_config
from tame.errors import TameError

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config (configs/*.yaml); defaults are used for keys it leaves out")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_lr=2e-4")
    parser.set_defaults(intermixed="overrides")  # overrides may also follow the options
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check the run (model, weights, layers, lists, image roots, GPU count), then exit",
    )
    parser.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="with --check: the processes (GPUs) per node torchrun will start (default: as this process was launched)",
    )


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.overrides)
    if args.check:
        return check_run(cfg, args.config, args.nproc)
    from tame.engine.preemption import Preempted, exit_status
    from tame.engine.train import train

    try:
        train(cfg)
    except Preempted as stopped:  # SIGTERM / SIGUSR1: a checkpoint was written; run again to continue
        logger.warning("%s", stopped)
        return exit_status(stopped)
    return 0


def check_run(cfg: Config, config_path: str | None, processes: int | None) -> int:
    """Print what the run will use; each problem is one line on stderr (exit 2), warnings do not fail."""
    from tame.distributed import resolve_launch
    from tame.engine.preflight import check_training

    if processes is None:  # this process as launched: a half-launched SLURM job is refused here, in one line
        processes = resolve_launch().local_world_size
    if processes < 1:
        raise TameError(f"--nproc {processes}: must be at least 1")
    report = check_training(cfg, processes)
    print("\n".join(report.summary))
    for warning in report.warnings:
        logger.warning(warning)
    for problem in report.problems:
        logger.error(problem)
    if not report.ok:
        print(f"tame: {len(report.problems)} problem(s) (above, on stderr): the run would fail")
        return 2
    print(f"tame: config OK ({config_path or 'defaults'}, {processes} process(es) per node): the run will start")
    return 0
