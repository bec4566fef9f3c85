"""Evaluation results as text: the reference's CSV, a fixed-width summary, markdown, and the JSON reports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tame.evaluation.loop import AD_IC_COLUMNS, EvaluationResult
from tame.metrics import ad_ic, level_name

Rows = Sequence[tuple[str, EvaluationResult]]  # (label: an epoch or a method, result)


def csv_text(rows: Rows, first: str = "epoch") -> str:
    """One line per (label, result); the reference's columns first, 4 decimals."""
    columns = list(rows[0][1].columns()) if rows else AD_IC_COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([first, *columns])
    for label, result in rows:
        values = result.columns()
        writer.writerow([label, *(f"{values[c]:.4f}" for c in columns)])
    return buffer.getvalue()


def summary_table(rows: Rows, first: str = "epoch") -> str:
    """A fixed-width table of the AD/IC columns (plus PG/EBPG and ms/img when present)."""
    columns = [c for c in rows[0][1].columns() if not c.startswith("ROAD")] if rows else AD_IC_COLUMNS
    width = max(len(c) for c in [first, *columns]) + 2
    lines = ["".join(c.rjust(width) for c in [first, *columns])]
    for label, result in rows:
        values = result.columns()
        lines.append(label.rjust(width) + "".join(f"{values[c]:.2f}".rjust(width) for c in columns))
    return "\n".join(lines)


def eval_report(
    method: str, config: str | None, list_file: Path, rows: Rows, checkpoints: Sequence[Path | None]
) -> str:
    """The JSON of ``tame eval``: every number of every evaluated checkpoint."""
    report = {
        "method": method,
        "config": config,
        "list": str(list_file),
        "results": [
            {"epoch": label, "checkpoint": str(path) if path else None, **asdict(result)}
            for (label, result), path in zip(rows, checkpoints)
        ],
    }
    return json.dumps(report, indent=1)


def compare_report(config: str | None, checkpoint: Path | None, list_file: Path, rows: Rows) -> str:
    """The JSON of ``tame compare``: every number of every method."""
    report = {
        "config": config,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "list": str(list_file),
        "results": {method: asdict(result) for method, result in rows},
    }
    return json.dumps(report, indent=1)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def summary_columns(result: EvaluationResult) -> dict[str, float]:
    """The columns of the comparison table: AD/IC per level, mean ROAD accuracies, localisation, timing."""
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


def markdown(rows: Rows, title: str) -> str:
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


def chart_panels(road: bool) -> list[tuple[str, list[str]]]:
    """Panels of the comparison's bar chart: AD, IC, and the mean ROAD accuracies and localisation when present."""
    levels = [level_name(p) for p in ad_ic.LEVELS]
    panels = [
        ("AD (%), lower is better", [f"AD({q})" for q in levels]),
        ("IC (%), higher is better", [f"IC({q})" for q in levels]),
    ]
    if road:
        panels.append(("ROAD accuracy (%), mean over levels", ["ROAD MORF acc", "ROAD LERF acc"]))
    panels.append(("localisation (%)", ["PG", "EBPG"]))
    return panels
