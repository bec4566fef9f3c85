"""The whole method end to end on a CPU, offline: ``make demo`` (or ``tame demo --config configs/demo.yaml``).

Stages, each reused on a rerun when its inputs have not changed (``stage.json`` in its folder): the synthetic
shapes set with ground-truth boxes; a small timm CNN trained from scratch on it (the stand-in for a pretrained
ImageNet model); the LR range test; TAME trained on the frozen classifier (the same code as the ImageNet runs);
TAME, Grad-CAM, Grad-CAM++ and a random-map control compared on the validation set (AD/IC, pointing game,
ms/image); and report.html + report.md with the results, the loss and LR curves and maps beside the boxes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tame.config.shipped import resolve_config
from tame.demo.pipeline import run_demo
from tame.demo.sizes import QUICK, DemoSize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default="configs/demo.yaml",
        help="the demo's TAME config (default configs/demo.yaml: from any folder, the one shipped with tame)",
    )
    parser.add_argument("--out", default="demo", help="output folder (default demo/); finished stages are reused")
    parser.add_argument("--quick", action="store_true", help="a reduced-size run that checks the machinery (tests)")
    parser.add_argument("--force", action="store_true", help="redo every stage")
    parser.add_argument("--seed", type=int, default=0, help="seed of the classifier's and TAME's training (default 0)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: every core)")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    size = QUICK if args.quick else DemoSize()
    report = run_demo(
        resolve_config(args.config), Path(args.out), size, force=args.force, seed=args.seed, threads=args.threads
    )
    print(f"tame demo: finished in {time.perf_counter() - started:.0f} s; open {report}")
    return 0
