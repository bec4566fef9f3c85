"""Evaluation results as text: the reference's CSV, a fixed-width summary, markdown, and the JSON reports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tame.evaluation.class_sensitivity import ClassSensitivity
from tame.evaluation.loop import AD_IC_COLUMNS, EvaluationResult
from tame.evaluation.samples import ClassRow, ImageRow
from tame.metrics import ad_ic, level_name

Rows = Sequence[tuple[str, EvaluationResult]]  # (label: an epoch or a method, result)
CLASS_NOTE = (
    "per class: grouped by the list's (true) label; every image explains its predicted class; "
    "accuracy: share of the class's images predicted as it"
)


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


ClassGroups = Sequence[tuple[str, Sequence[ClassRow]]]  # (epoch or method, its rows per class)
Sensitivities = Sequence[tuple[str, ClassSensitivity]]  # (epoch or method, its class sensitivity)


def eval_report(
    method: str,
    config: str | None,
    list_file: Path,
    rows: Rows,
    checkpoints: Sequence[Path | None],
    classes: ClassGroups = (),
    sensitivity: Sensitivities = (),
) -> str:
    """The JSON of ``tame eval``: every number of every evaluated checkpoint (and per class, with ``classes``; the
    class sensitivity, with ``sensitivity``)."""
    report = {
        "method": method,
        "config": config,
        "list": str(list_file),
        "results": [
            {"epoch": label, "checkpoint": str(path) if path else None, **asdict(result)}
            for (label, result), path in zip(rows, checkpoints)
        ],
    }
    if classes:
        report["per_class"] = class_records(classes)
    if sensitivity:
        report["class_sensitivity"] = sensitivity_records(sensitivity)
    return json.dumps(report, indent=1)


def compare_report(
    config: str | None,
    checkpoint: Path | None,
    list_file: Path,
    rows: Rows,
    classes: ClassGroups = (),
    sensitivity: Sensitivities = (),
) -> str:
    """The JSON of ``tame compare``: every number of every method (and per class, with ``classes``; the class
    sensitivity, with ``sensitivity``)."""
    report = {
        "config": config,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "list": str(list_file),
        "results": {method: asdict(result) for method, result in rows},
    }
    if classes:
        report["per_class"] = class_records(classes)
    if sensitivity:
        report["class_sensitivity"] = sensitivity_records(sensitivity)
    return json.dumps(report, indent=1)


def class_records(classes: ClassGroups) -> dict[str, list[dict]]:
    """epoch or method -> one record per class of the list's labels: label, name and every column."""
    return {group: [{"label": r.label, "name": r.name, **r.columns()} for r in rows] for group, rows in classes}


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


def markdown(rows: Rows, title: str, classes: ClassGroups = (), sensitivity: Sensitivities = ()) -> str:
    """The comparison as markdown: one summary table, with ROAD the accuracy at each removal level, with
    ``classes`` one per-class table per method, and with ``sensitivity`` the class-sensitivity table."""
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
    for method, class_rows in classes:
        columns = list(class_rows[0].columns()) if class_rows else []
        lines += ["", f"**{method}**, {CLASS_NOTE}", "", "| class | " + " | ".join(columns) + " |"]
        lines.append("|---" * (len(columns) + 1) + "|")
        lines += [f"| {row.name} | " + " | ".join(_class_cells(row, columns)) + " |" for row in class_rows]
    lines += sensitivity_markdown(sensitivity)
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
    panels.append(("class sensitivity (%)", ["CS selective", "CS mass", "CS peak"]))
    return panels


def image_csv(
    groups: Sequence[tuple[str, Sequence[ImageRow]]], levels: Sequence[float], first: str, names: Sequence[str] = ()
) -> str:
    """One line per (epoch or method, image), in list order: the list's path and label, the explained (predicted)
    class, Y and O at each level (exact float32 values, so they average back to AD/IC) and, with boxes, the
    pointing-game hit (1/0; empty when no box pixel lies in the crop) and EBPG (percent)."""
    located = any(row.hit is not None for _, rows in groups for row in rows)
    header = [first, "path", "label", "predicted", "Y", *[f"O({level_name(p)})" for p in levels]]
    header += ["PG", "EBPG"] if located else []
    header += ["label_name", "predicted_name"] if names else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for label, rows in groups:
        for row in rows:
            line = [label, row.path, row.label, row.predicted, repr(row.y), *(repr(o) for o in row.o)]
            if located:
                line += ["", ""] if row.hit is None else [int(row.hit), repr(100.0 * row.energy)]
            if names:
                line += [_name(names, row.label), _name(names, row.predicted)]
            writer.writerow(line)
    return buffer.getvalue()


def _name(names: Sequence[str], index: int) -> str:
    return names[index] if 0 <= index < len(names) else ""


def class_csv(groups: ClassGroups, first: str) -> str:
    """One line per (epoch or method, class of the list's labels): images, accuracy, AD/IC, PG/EBPG; 4 decimals."""
    columns = list(groups[0][1][0].columns()) if groups and groups[0][1] else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([first, "label", "name", *columns])
    for label, rows in groups:
        for row in rows:
            values = row.columns()
            writer.writerow([label, row.label, row.name, row.images, *(f"{values[c]:.4f}" for c in columns[1:])])
    return buffer.getvalue()


def class_table(rows: Sequence[ClassRow], title: str) -> str:
    """A fixed-width per-class table under ``title`` and the note on how images are grouped."""
    columns = list(rows[0].columns()) if rows else []
    width = max([len(c) for c in columns] + [len(row.name) for row in rows] + [5]) + 2
    lines = [title, CLASS_NOTE, "class".rjust(width) + "".join(c.rjust(width) for c in columns)]
    for row in rows:
        lines.append(row.name.rjust(width) + "".join(cell.rjust(width) for cell in _class_cells(row, columns)))
    return "\n".join(lines)


def _class_cells(row: ClassRow, columns: Sequence[str]) -> list[str]:
    """A class row's values as table cells: the image count whole, the rest with 2 decimals."""
    values = row.columns()
    return [f"{values[c]:.0f}" if c == "images" else f"{values[c]:.2f}" for c in columns]


SENSITIVITY_NOTE = (
    "composites of {tiles} images of different labels, each label explained on the composite; selective: every "
    "class's map peaks in its own tile and holds more mass there than in any other; mass: mean share of a class's "
    "map on its own tile; peak: class maps peaking on their own tile (all %, higher is better)"
)


def sensitivity_records(groups: Sensitivities) -> dict[str, dict]:
    """epoch or method -> its class sensitivity, every number (for the JSON reports)."""
    return {group: result.record() for group, result in groups}


def sensitivity_markdown(groups: Sensitivities) -> list[str]:
    """Markdown lines: one row per method (selective, mass, peak), then each class's on-own share per method."""
    if not groups:
        return []
    first = groups[0][1]
    names = [c["name"] for c in first.per_class]
    lines = [
        "",
        f"Class sensitivity on {first.composites} composites: " + SENSITIVITY_NOTE.format(tiles=first.tiles),
        "",
        "| method | selective | mass | peak | " + " | ".join(f"{name} on own" for name in names) + " |",
        "|---" * (4 + len(names)) + "|",
    ]
    for method, result in groups:
        cells = [result.selective, result.own_mass, result.peak, *[c["on_own"] for c in result.per_class]]
        lines.append(f"| {method} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    return lines


def sensitivity_csv(groups: Sensitivities, first: str) -> str:
    """One line per (epoch or method, class) and one per epoch or method (class ``all``, with ``selective``):
    class maps, on-own, mass and peak shares (%), 4 decimals."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([first, "label", "name", "tiles", "composites", "maps", "selective", "on_own", "mass", "peak"])
    for group, result in groups:
        maps = sum(c["slots"] for c in result.per_class)
        on_own = sum(c["on_own"] * c["slots"] for c in result.per_class) / max(maps, 1)
        writer.writerow(
            [group, "all", "", result.tiles, result.composites, maps, f"{result.selective:.4f}", f"{on_own:.4f}"]
            + [f"{result.own_mass:.4f}", f"{result.peak:.4f}"]
        )
        for c in result.per_class:
            cells = [f"{c[key]:.4f}" for key in ("on_own", "own_mass", "peak")]
            writer.writerow([group, c["label"], c["name"], result.tiles, result.composites, c["slots"], "", *cells])
    return buffer.getvalue()
