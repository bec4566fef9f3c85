"""Evaluate explanation maps: AD / IC at 100 %, 50 %, 15 % (docs/METHOD.md, "AD and IC"), ROAD and localisation.

  tame eval --config configs/resnet50.yaml --checkpoint snapshots/resnet50/             # every epoch_*.pt
  tame eval --config configs/resnet50.yaml --checkpoint snapshots/resnet50/epoch_4.pt --road
  tame eval --config configs/resnet50.yaml --method gradcam --list datalist/ILSVRC/Evaluation_2000.txt
  tame eval --config configs/synthetic.yaml --checkpoint snapshots/synthetic/ --boxes data/synthetic/boxes.json
  torchrun --standalone --nproc_per_node=4 -m tame.cli eval --config configs/resnet50.yaml --checkpoint DIR

Batched: one forward gives logits and the map of the predicted class; the three masked copies of the batch then go
through the classifier alone (never the AM again). Sharded: rank r evaluates list positions r, r+W, ...; padding
samples (label -1) are dropped and the per-metric sums are all-reduced, so every sample counts exactly once.
Writes ``<out>/<method>_<list>.csv`` (the reference's columns ``epoch,AD(100%),IC(100%),...``, then ROAD and
localisation columns when asked for) and a ``.json`` with every number, updated after each checkpoint, and prints a
summary table. ``--per-image FILE.csv``: one row per image and checkpoint (list path, label, predicted class, Y, O at
each level, pointing hit), to find the images a method fails on; ``--per-class``: AD/IC and the pointing games per
class of the list's (true) labels in ``<out>/<method>_<list>_per_class.csv``, the last checkpoint's printed;
``--class-sensitivity``: where each class's map falls on composites of images of different classes
(``<out>/<method>_<list>_class_sensitivity.csv`` and the JSON; docs/METHOD.md).
Default ``out``: ``eval/`` beside the checkpoints (TAME) or ``<output_dir>/eval`` (baselines).
"""

from __future__ import annotations

import argparse

from tame.commands.options import add_device_option
from tame.evaluation import EvalSpec, evaluate_spec, summary_table
from tame.evaluation.spec import default_road_workers
from tame.evaluation.tables import class_table, sensitivity_markdown
from tame.methods import list_methods
from tame.metrics.class_sensitivity import TILES


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``tame eval`` and ``tame compare``."""
    parser.add_argument("--config", required=True, help="run config (model, layers, data sizes and paths)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.crop=224")
    parser.set_defaults(intermixed="overrides")  # overrides may also follow the options
    parser.add_argument("--list", help="evaluation list (default: data.eval_list of the config)")
    parser.add_argument("--root", help="image root of the list (default: data.val_root of the config)")
    parser.add_argument("--out", help="output folder")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="global batch: images per step over all processes, a multiple of their number (default: data.batch_size)",
    )
    parser.add_argument(
        "--chunk", type=int, help="images per classifier forward on masked copies (default: all of a batch)"
    )
    parser.add_argument("--max-samples", type=int, help="evaluate only the first N samples of the list")
    parser.add_argument(
        "--road",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also ROAD (MoRF/LeRF at 10..90%% removed, noisy linear imputation; CPU-heavy)",
    )
    parser.add_argument(
        "--road-workers", type=int, default=default_road_workers(), help="threads for the ROAD imputation solves"
    )
    parser.add_argument(
        "--boxes",
        help="ground-truth boxes: the synthetic set's boxes.json, or JSON {list path: "
        "[[x0, y0, x1, y1], ...]} in crop pixels; adds the (energy) pointing game",
    )
    parser.add_argument("--pointing-tolerance", type=float, default=0.0, help="pointing-game tolerance in pixels")
    parser.add_argument("--num-masks", type=int, default=4000, help="RISE: number of random masks")
    parser.add_argument("--layer", help="target layer of the CAM methods (default: the config's last layer)")
    parser.add_argument(
        "--per-image",
        metavar="FILE.csv",
        help="also write one row per image: list path, label, predicted class, Y, O at each level, pointing hit",
    )
    parser.add_argument(
        "--per-class",
        action="store_true",
        help="also AD/IC and pointing game per class (grouped by the list's true label): a CSV and a printed table",
    )
    parser.add_argument(
        "--class-sensitivity",
        type=int,
        nargs="?",
        const=2,
        default=0,
        choices=TILES,
        metavar="T",
        help="also class sensitivity: composites of T (2, the default, or 4) images of different labels, each label "
        "explained on the composite; where does each class's map fall (docs/METHOD.md)",
    )
    parser.add_argument("--composites", type=int, help="class sensitivity: composites (default: list images / T)")
    add_device_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def data_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of :class:`tame.evaluation.EvalOptions` that :func:`add_data_arguments` parsed."""
    return dict(
        config=args.config,
        overrides=tuple(args.overrides),
        list_file=args.list,
        root=args.root,
        out=args.out,
        road=args.road,
        road_workers=args.road_workers,
        boxes=args.boxes,
        pointing_tolerance=args.pointing_tolerance,
        batch_size=args.batch_size,
        chunk=args.chunk,
        max_samples=args.max_samples,
        num_masks=args.num_masks,
        layer=args.layer,
        device=args.device,
        progress=not args.no_progress,
        per_image=args.per_image,
        per_class=args.per_class,
        class_sensitivity=args.class_sensitivity,
        composites=args.composites,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="TAME attention weights: a file, or a training folder (every epoch_N.pt)")
    parser.add_argument("--method", default="tame", help=f"explanation method: {', '.join(list_methods())}")
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    result = evaluate_spec(EvalSpec(method=args.method, checkpoint=args.checkpoint, **data_options(args)))
    if result.is_main:
        print(summary_table(result.rows))
        print(f"{result.rows[0][1].num_samples} samples; wrote {result.out / result.name}.csv and .json")
        if result.classes:
            label, rows = result.classes[-1]
            print(class_table(rows, f"\n{result.method}" + (f" epoch {label}" if label else "") + ", per class"))
            print(f"wrote {result.per_class_path}")
        if args.per_image:
            print(f"wrote {args.per_image} (one row per image)")
        if result.sensitivity:
            print("\n".join(sensitivity_markdown(result.sensitivity)))
            print(f"wrote {result.sensitivity_path}")
    return 0
