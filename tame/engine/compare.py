"""TAME against the baselines on one list, under one protocol: a markdown + CSV table and a bar chart.

  tame compare --config configs/resnet50.yaml --checkpoint snapshots/resnet50/epoch_4.pt
  tame compare --config configs/synthetic.yaml --checkpoint snapshots/synthetic/ --boxes data/synthetic/boxes.json
  tame compare --config configs/vgg16.yaml --checkpoint vgg16_TAME.pt --methods tame gradcam rise --num-masks 2000

Every method sees the same images through the same classifier: AD / IC at 100, 50, 15 %, ROAD (MoRF / LeRF
accuracy at 10..90 % removed; ``--no-road`` skips it), pointing game and energy-based pointing game with
``--boxes``, and the milliseconds one explanation takes per image. Writes ``<out>/compare.{md,csv,json,png}``
(default ``out``: ``compare/`` next to the checkpoint).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tame import distributed
from tame.baselines import create_explainer, list_methods, resolve_method
from tame.engine.evaluate import (
    EvaluationResult,
    add_data_arguments,
    checkpoints_to_evaluate,
    csv_text,
    evaluate,
    evaluate_options,
    method_options,
    prepare,
)
from tame.io import write_text_atomic
from tame.metrics import ad_ic, level_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="TAME attention weights: a file, or a training folder (its newest epoch_N.pt)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list_methods(),
        metavar="METHOD",
        help=f"methods to compare (default: all of {', '.join(list_methods())})",
    )
    add_data_arguments(parser)
    parser.set_defaults(road=True)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def summary_columns(result: EvaluationResult) -> dict[str, float]:
    """The columns of the markdown table: AD/IC per level, mean ROAD accuracies, localisation, timing."""
    row = {
        f"{metric}({level})": values[level]
        for level in result.ad
        for metric, values in (("AD", result.ad), ("IC", result.ic))
    }
    for order, levels in result.road.items():
        row[f"ROAD {order.upper()} acc"] = _mean([v["accuracy"] for v in levels.values()])
    if result.pointing_game is not None:
        row["PG"] = result.pointing_game
        row["EBPG"] = result.energy_pointing_game
    row["ms/img"] = result.ms_per_image
    return row


def markdown(rows: Sequence[tuple[str, EvaluationResult]], title: str) -> str:
    """The comparison as markdown: one summary table and, with ROAD, the accuracy at each removal level."""
    columns = list(summary_columns(rows[0][1]))
    lines = [
        f"# {title}",
        "",
        f"{rows[0][1].num_samples} images. AD, ROAD MoRF: lower is better; IC, ROAD LeRF, "
        "PG, EBPG: higher is better. ROAD columns average the accuracy over the removal levels.",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for method, result in rows:
        values = summary_columns(result)
        lines.append(f"| {method} | " + " | ".join(f"{values[c]:.2f}" for c in columns) + " |")
    for order in rows[0][1].road:
        levels = list(rows[0][1].road[order])
        lines += [
            "",
            f"ROAD {order.upper()} accuracy (%) by pixels removed",
            "",
            "| method | " + " | ".join(levels) + " |",
            "|---" * (len(levels) + 1) + "|",
        ]
        lines += [
            f"| {method} | " + " | ".join(f"{result.road[order][q]['accuracy']:.2f}" for q in levels) + " |"
            for method, result in rows
        ]
    return "\n".join(lines) + "\n"


def chart_panels(road_levels: Sequence[float]) -> list[tuple[str, list[str]]]:
    """Panels of the bar chart: AD, IC, and the mean ROAD accuracies and localisation when present."""
    levels = [level_name(p) for p in ad_ic.LEVELS]
    panels = [
        ("AD (%), lower is better", [f"AD({q})" for q in levels]),
        ("IC (%), higher is better", [f"IC({q})" for q in levels]),
    ]
    if road_levels:
        panels.append(("ROAD accuracy (%), mean over levels", ["ROAD MORF acc", "ROAD LERF acc"]))
    panels.append(("localisation (%)", ["PG", "EBPG"]))
    return panels


def run(args: argparse.Namespace) -> int:
    from tame.viz.plots import comparison_chart

    methods = list(dict.fromkeys(resolve_method(name) for name in args.methods))  # validated, in order, once each
    checkpoint = checkpoints_to_evaluate(args.checkpoint)[-1][1]
    data = prepare(args)
    try:
        if "tame" in methods:
            data.model.load_attention(checkpoint)
            data.model.eval()
        options = evaluate_options(args, data)
        rows = []
        for method in methods:
            with create_explainer(method, data.model, **method_options(method, args)) as explainer:
                rows.append((method, evaluate(explainer, data.batches(), desc=method, **options)))
        if data.dist.is_main:
            out = Path(args.out) if args.out else checkpoint.parent / "compare"
            title = f"{data.cfg.model.name} on {data.list_file.name}"
            write_text_atomic(out / "compare.md", markdown(rows, title))
            write_text_atomic(out / "compare.csv", csv_text(rows, first="method"))
            report = {
                "config": args.config,
                "checkpoint": str(checkpoint),
                "list": str(data.list_file),
                "results": {method: asdict(result) for method, result in rows},
            }
            write_text_atomic(out / "compare.json", json.dumps(report, indent=1))
            table = {method: summary_columns(result) for method, result in rows}
            comparison_chart(table, chart_panels(options["road_levels"]), out / "compare.png", title)
            print(markdown(rows, title))
            print(f"wrote {out}/compare.md, .csv, .json and .png")
    finally:
        if data.dist.distributed:
            distributed.cleanup()
    return 0
