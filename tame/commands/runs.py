"""One table of training runs: model, layers, AM version, LR, epochs, the best epoch and its AD / IC, status.

  tame runs snapshots/resnet50 snapshots/vgg16     # run folders (output_dir of `tame train`)
  tame runs snapshots                             # every run folder directly inside

Read from each folder's config.yaml, train_record.json and checkpoint names (nothing is loaded into torch).
Status: ``finished``; ``running (step S)``; ``stopped at step S``, where S is the newest checkpoint, from which
``tame train`` with the same config continues (``(killed)``: the process is gone without saying so);
``unreadable: ...``: the folder's files cannot be read (the exit status is then 1).
"""

from __future__ import annotations

import argparse

from tame.engine.runs import find_runs, runs_table, summarise_runs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="DIR", help="training output folders, or folders that hold them")


def run(args: argparse.Namespace) -> int:
    rows, unreadable = summarise_runs(find_runs(args.runs))
    print(runs_table(rows))
    return 1 if unreadable else 0
