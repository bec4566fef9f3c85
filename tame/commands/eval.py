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

from tame.commands.options import add_section_flags, flag_values
from tame.config import Config, load_config
from tame.evaluation import run_evaluation, summary_table
from tame.evaluation.tables import class_table, sensitivity_markdown
from tame.methods import list_methods


def add_data_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """The options ``tame eval`` and ``tame compare`` share: the config, its overrides and the ``eval`` section's
    flags (generated from its fields; ``skip``: those a command has not)."""
    parser.add_argument("--config", required=True, help="run config (model, layers, data sizes and paths)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.crop=224")
    parser.set_defaults(intermixed="overrides")  # overrides may also follow the options
    add_section_flags(parser, "eval", skip=skip, notes={"method": f"one of {', '.join(list_methods())}"})


def load_run_config(args: argparse.Namespace) -> Config:
    """The config file, its ``key=value`` overrides, then the flags given (``eval.*``, ``compare.*``), validated
    once."""
    return load_config(args.config, args.overrides, flag_values(args, "eval", "compare"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = load_run_config(args)
    result = run_evaluation(config, config_file=args.config)
    if result.is_main:
        print(summary_table(result.rows))
        print(f"{result.rows[0][1].num_samples} samples; wrote {result.out / result.name}.csv and .json")
        if result.classes:
            label, rows = result.classes[-1]
            print(class_table(rows, f"\n{result.method}" + (f" epoch {label}" if label else "") + ", per class"))
            print(f"wrote {result.per_class_path}")
        if config.eval.per_image:
            print(f"wrote {config.eval.per_image} (one row per image)")
        if result.sensitivity:
            print("\n".join(sensitivity_markdown(result.sensitivity)))
            print(f"wrote {result.sensitivity_path}")
    return 0
