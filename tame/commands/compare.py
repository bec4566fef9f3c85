"""TAME against the baselines on one list, under one protocol: a markdown + CSV table and a bar chart.

  tame compare --config configs/resnet50.yaml --checkpoint snapshots/resnet50/epoch_4.pt
  tame compare --config configs/synthetic.yaml --checkpoint snapshots/synthetic/ --boxes data/synthetic/boxes.json
  tame compare --config configs/vgg16.yaml --checkpoint vgg16_TAME.pt --methods tame gradcam rise --num-masks 2000
  tame compare --config configs/resnet50.yaml --checkpoint snapshots/resnet50/ \
      --methods tame p-tame=snapshots/resnet50_ptame/ \
          lcam-img=snapshots/resnet50_lcam_img/ gradcam  # TAME, P-TAME, L-CAM-Img, Grad-CAM: one table

Every method sees the same images through the same classifier: AD / IC at 100, 50, 15 %, ROAD (MoRF / LeRF
accuracy at 10..90 % removed; ``--no-road`` skips it), pointing game and energy-based pointing game with
``--boxes``, and the milliseconds one explanation takes per image. Writes ``<out>/compare.{md,csv,json,png}``
(default ``out``: ``compare/`` next to the checkpoint); ``--per-class`` adds ``<out>/compare_per_class.csv`` (by the
list's true label) and prints it, ``--per-image FILE.csv`` one row per method and image; ``--class-sensitivity``
adds the class-sensitivity table (composites of images of different classes, docs/METHOD.md) and
``<out>/compare_class_sensitivity.csv``; ``--sanity-checks [N]`` the cascading model-parameter randomisation and
random-logit checks on the list's first N images (``<out>/compare_sanity.{csv,png}``).
"""

from __future__ import annotations

import argparse

from tame.commands.eval import add_data_arguments, load_run_config
from tame.commands.options import add_section_flags
from tame.evaluation import compare
from tame.evaluation.compare import PER_CLASS, SANITY, SENSITIVITY
from tame.evaluation.tables import class_table
from tame.methods import list_methods


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser, skip=("method",))
    add_section_flags(parser, "compare", notes={"methods": f"of {', '.join(list_methods())}"})


def run(args: argparse.Namespace) -> int:
    config = load_run_config(args)
    comparison = compare(config, config_file=args.config)
    if comparison.is_main:
        print(comparison.markdown())
        print(f"wrote {comparison.out}/compare.md, .csv, .json and .png")
        for method, rows in comparison.classes:
            print(class_table(rows, f"\n{method}, per class"))
        if comparison.classes:
            print(f"wrote {comparison.out / PER_CLASS}")
        if config.eval.per_image:
            print(f"wrote {config.eval.per_image} (one row per method and image)")
        if comparison.sensitivity:
            print(f"wrote {comparison.out / SENSITIVITY}")
        if comparison.sanity:
            print(f"wrote {comparison.out / SANITY[0]} and {SANITY[1]}")
    return 0
