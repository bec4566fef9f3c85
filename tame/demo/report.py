"""The demo's report: what was trained and measured, the comparison table, curves, and maps beside the boxes."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tame.config import Config
from tame.demo.sizes import DemoSize
from tame.engine.lr_suggestion import format_lr

logger = logging.getLogger(__name__)

COLUMNS = ("AD(100%)", "IC(100%)", "AD(50%)", "IC(50%)", "AD(15%)", "IC(15%)", "PG", "EBPG", "ms/img")
FIGURES = (
    ("TAME training losses", "tame/loss_curve.png"),
    ("LR range test (suggested max LR marked)", "lr_find/lr_find.png"),
    ("AD / IC by method", "compare/compare.png"),
    ("Sanity checks: cascading randomisation (similarity to the trained model's map)", "sanity/compare_sanity.png"),
)
COMPOSITES = 3  # composite figures in the report


def write_demo_report(
    cfg: Config, out: Path, size: DemoSize, stages: Mapping[str, dict], methods: Sequence[str], threads: int
) -> Path:
    """Write ``out/report.html`` and ``report.md`` from the stages' outputs; returns the HTML's path.

    ``stages``: stage name -> its recorded outputs (``compare``: ``{"results": {method: column -> value}}``).
    """
    from tame.demo.composites import write_composites
    from tame.demo.gallery import write_gallery
    from tame.viz.report import Report, write_report

    results = stages["compare"]["results"]
    header, table = results_table(results)
    summary = _summary(size, stages["classifier"], results)
    if "check" in stages:
        summary += check_lines(results, stages["check"], stages["data"]["classes"])
        summary += sensitivity_lines(stages["compare"].get("sensitivity", {}), stages["check"])
    if "sanity" in stages:
        summary += sanity_lines(stages["sanity"]["sanity"])
    gallery = write_composites(cfg, out, COMPOSITES, methods) + write_gallery(cfg, out, size.gallery, methods)
    figures = [(caption, name) for caption, name in FIGURES if (out / name).is_file()]
    report = Report(
        "TAME demo: synthetic shapes, CPU only",
        summary,
        header,
        table,
        figures,
        [(caption, os.path.relpath(path, out)) for caption, path in gallery],
        _facts(cfg, stages, threads),
        per_class_tables(stages["compare"].get("per_class", {}), stages.get("check", {}).get("better_layer"))
        + sensitivity_tables(stages["compare"].get("sensitivity", {}), stages.get("check", {})),
    )
    html_path, _ = write_report(report, out)
    for line in summary[2:]:
        logger.info("%s", line)
    return html_path


def results_table(results: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[list[str]]]:
    """The report's table: one row per method, the AD/IC, pointing-game and timing columns present, 2 decimals."""
    first = next(iter(results.values()), {})
    header = ["method", *[c for c in COLUMNS if c in first]]
    table = [[method, *[f"{values[c]:.2f}" for c in header[1:]]] for method, values in results.items()]
    return header, table


PER_CLASS = (("tame", "TAME"), ("gradcam", "Grad-CAM"))  # the methods of the per-class table


def per_class_tables(
    per_class: Mapping[str, Sequence[Mapping]], better_layer: Mapping[str, str] | None = None
) -> list[tuple[str, list[str], list[list[str]]]]:
    """The per-class table: TAME's and Grad-CAM's pointing game and AD(15%) per class of the validation labels
    (Grad-CAM on its better layer, as the check stage chose it on the tuning split)."""
    methods = []
    for method, name in PER_CLASS:
        layer = (better_layer or {}).get(method)
        key = method if method in per_class else f"{method} ({layer})" if layer else None
        key = key or next((k for k in per_class if k.startswith(f"{method} (")), None)
        if per_class.get(key):
            methods.append((key, name if key == method else f"{name} {key.removeprefix(method).strip()}"))
    if not methods:
        return []
    header = ["class", *[f"{name} PG" for _, name in methods], *[f"{name} AD(15%)" for _, name in methods]]
    rows = []
    for k, first in enumerate(per_class[methods[0][0]]):
        cells = [per_class[method][k] for method, _ in methods]
        rows.append([first["name"], *[f"{c['PG']:.2f}" for c in cells], *[f"{c['AD(15%)']:.2f}" for c in cells]])
    title = "Per class (by the true label; the map explains the predicted class; PG higher, AD lower is better)"
    return [(title, header, rows)]


def _summary(size: DemoSize, classifier: dict, results: Mapping[str, Mapping[str, float]]) -> list[str]:
    summary = [
        f"A {size.classifier} classifier trained from scratch on {size.classes} synthetic shape classes "
        f"({size.train_per_class} training images per class, {size.image_size} px) reaches "
        f"{100 * classifier['val_accuracy']:.1f} % validation accuracy; TAME was trained on it for "
        f"{size.tame_epochs} epochs and compared with Grad-CAM and Grad-CAM++ (each on layer3 and layer4) and random "
        f"maps on "
        f"{size.classes * size.val_per_class} validation images.",
        "AD: average drop in the class probability when only the map's top pixels are kept (lower is better); "
        "IC: share of images whose probability increases (higher is better); PG: pointing game hit rate, EBPG: "
        "share of the map's energy inside the object's box (higher is better).",
    ]
    if "tame" in results and "random" in results:
        tame, control = results["tame"], results["random"]
        beats = tame["AD(100%)"] < control["AD(100%)"] and tame["PG"] > control["PG"]
        summary.append(
            f"TAME {'beats' if beats else 'does NOT beat'} the random-map control on AD(100%) "
            f"({tame['AD(100%)']:.1f} vs {control['AD(100%)']:.1f}) and the pointing game "
            f"({tame['PG']:.1f} vs {control['PG']:.1f})."
        )
    return summary


def check_lines(results: Mapping[str, Mapping[str, float]], check: dict, classes: Sequence[str]) -> list[str]:
    """What the held-out check says: TAME's AD(15%) against each CAM's better layer (chosen on the tuning split,
    by AD(15%)), and TAME's pointing game per class with its worst class (report and tuning split)."""
    lines = []
    tame = results["tame"]["AD(15%)"]
    for cam, layer in check["better_layer"].items():
        other = results[f"{cam} ({layer})"]["AD(15%)"]
        verdict = "beats" if tame < other else "does NOT beat"
        lines.append(
            f"AD(15%): TAME {verdict} {cam} on its better layer ({layer}, chosen on the held-out tuning split): "
            f"{tame:.1f} vs {other:.1f} (lower is better)."
        )
    for split, values in check["pg_per_class"].items():
        worst = min(range(len(values)), key=values.__getitem__)
        per_class = ", ".join(f"{name} {value:.0f}" for name, value in zip(classes, values))
        lines.append(
            f"TAME's pointing game per class on the {split} split (%): {per_class}; "
            f"worst class: {classes[worst]} {values[worst]:.1f} %."
        )
    return lines


def _facts(cfg: Config, stages: Mapping[str, dict], threads: int) -> dict[str, str]:
    return {
        "seed, threads": f"{cfg.train.seed} (classifier and TAME), {threads}",
        "stage seconds": ", ".join(f"{name} {outputs.get('seconds', 0):.0f}" for name, outputs in stages.items()),
        "suggested max LR": _suggestion(stages["lr-find"]),
        "config": f"{cfg.model.name}, layers {' '.join(cfg.model.layers)}, {cfg.train.epochs} epochs, "
        f"max LR {format_lr(stages['tame'].get('max_lr', cfg.train.max_lr))}, batch {cfg.data.batch_size}, "
        f"regulariser {cfg.train.regulariser}",
        "checkpoint": stages["tame"]["checkpoint"],
    }


def _suggestion(lr_find: Mapping) -> str:
    """The LR range test's suggestion as ``1e-2`` (used for TAME's training), or why there is none."""
    suggested = lr_find.get("suggested_max_lr")
    if suggested is None:
        return (
            f"none ({lr_find.get('suggestion_reason') or 'an LR range test of an earlier version'}): the config's used"
        )
    return f"{format_lr(suggested)} (a tenth of the minimum at {format_lr(lr_find.get('minimum_lr'))}), used for TAME"


def sensitivity_lines(report: Mapping[str, Mapping], check: Mapping) -> list[str]:
    """Class sensitivity on the report split: TAME's against each CAM's on its better layer, and TAME's worst
    class (by the share of its maps on its own object)."""
    if "tame" not in report:
        return []
    tame = report["tame"]
    cams = [
        f"{cam} ({layer}) {report[f'{cam} ({layer})']['selective']:.0f} %"
        for cam, layer in check["better_layer"].items()
    ]
    worst = min(tame["per_class"], key=lambda c: c["on_own"])
    return [
        f"Class sensitivity (report split, {tame['composites']} composites of two images of different classes, each "
        f"class explained on the composite): TAME's maps are all on their own object in {tame['selective']:.0f} % "
        f"of the composites (mean mass on its own object {tame['own_mass']:.0f} %; {', '.join(cams)} on the CAMs' "
        f"better layers); TAME's worst class: {worst['name']}, on its own object in {worst['on_own']:.0f} %."
    ]


def sensitivity_tables(report: Mapping[str, Mapping], check: Mapping) -> list[tuple[str, list[str], list[list[str]]]]:
    """One table: every method's class sensitivity on the report split (and on the tuning split, where measured)."""
    if not report:
        return []
    tune = check.get("tune_sensitivity", {})
    header = ["method", "selective (report)", "mass on own (report)", "peak on own (report)", "selective (tune)"]
    rows = []
    for method, values in report.items():
        other = f"{tune[method]['selective']:.2f}" if method in tune else ""
        rows.append([method, *[f"{values[k]:.2f}" for k in ("selective", "own_mass", "peak")], other])
    title = (
        "Class sensitivity (%, composites of two images of different classes; selective: every class's map peaks on "
        "its own image and holds most of its mass there; higher is better)"
    )
    return [(title, header, rows)]


def sanity_lines(sanity: Mapping[str, Mapping]) -> list[str]:
    """The sanity checks in words: each method's random-logit SSIM and its SSIM once the whole network is random."""
    cells = []
    for method, record in sanity.items():
        last = record["cascade"][-1]
        cells.append(f"{method} {record['random_logit']['ssim']:.2f} / {last['ssim']:.2f}")
    images = next(iter(sanity.values()))["images"] if sanity else 0
    return [
        f"Sanity checks on {images} report images (SSIM to the trained model's map, 1 = identical; lower passes): "
        f"random logit (a random other class's map against the predicted class's) / cascading randomisation with "
        f"every block re-initialised: {'; '.join(cells)}. TAME's cascade starts by re-initialising its attention "
        f"mechanism; the classifier's head does not enter TAME's map (docs/METHOD.md, sanity checks)."
        + (
            " P-TAME's map never reads the classifier's blocks (its features come from the auxiliary network), so "
            "only its attention step can change it."
            if "p-tame" in sanity
            else ""
        )
    ]
