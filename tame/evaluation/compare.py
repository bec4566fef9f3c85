"""TAME against the baselines on one list, under one protocol: a markdown + CSV table, a JSON and a bar chart.

Every method sees the same images through the same classifier: AD / IC at 100, 50, 15 %, ROAD (MoRF / LeRF
accuracy at 10..90 % removed) when asked for, pointing game and energy-based pointing game with boxes, and the
milliseconds one explanation takes per image, and with ``class_sensitivity`` whether each class's map falls on
its own object in composites of images of different classes (:mod:`tame.evaluation.class_sensitivity`), with
``sanity_checks`` the cascading-randomisation and random-logit checks (:mod:`tame.evaluation.sanity`).
:func:`compare` writes ``<out>/compare.{md,csv,json,png}`` (and ``compare_class_sensitivity.csv``,
``compare_sanity.{csv,png}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tame.checkpoint.format import read_attention_file
from tame.checkpoint.naming import newest_epoch_checkpoint
from tame.config import Config, EvalConfig, expand_path
from tame.evaluation.class_sensitivity import ClassSensitivity, measure_list
from tame.evaluation.loop import EvaluationResult
from tame.evaluation.run import EvaluationData, open_evaluation
from tame.evaluation.samples import ClassRow, ImageRow, class_names
from tame.evaluation.sanity import first_images, sanity_checks, sanity_csv, sanity_markdown
from tame.evaluation.spec import compare_methods, method_options, row_label, split_method, trained_entry, with_road
from tame.evaluation.tables import (
    chart_panels,
    class_csv,
    compare_report,
    csv_text,
    image_csv,
    markdown,
    sensitivity_csv,
    summary_columns,
)
from tame.io import write_text_atomic
from tame.methods import create_explainer
from tame.metrics.sanity import SIMILARITIES
from tame.models import TameModel
from tame.models.auxiliary import network_from_meta

FILES = ("compare.md", "compare.csv", "compare.json", "compare.png")
PER_CLASS = "compare_per_class.csv"  # with per_class
SENSITIVITY = "compare_class_sensitivity.csv"  # with class_sensitivity
SANITY = ("compare_sanity.csv", "compare_sanity.png")  # with sanity_checks


@dataclass
class Comparison:
    """(method, result) rows in the order asked for, the table's title, and the folder they were written to."""

    rows: list[tuple[str, EvaluationResult]]
    title: str
    out: Path
    checkpoint: Path | None  # the TAME weights evaluated (None without tame)
    is_main: bool = True  # rank 0 (the process that wrote the files)
    # with per_image / per_class: (method, every image's row) and (method, rows per class of the list's labels)
    images: list[tuple[str, list[ImageRow]]] = field(default_factory=list)
    classes: list[tuple[str, list[ClassRow]]] = field(default_factory=list)
    sensitivity: list[tuple[str, ClassSensitivity]] = field(default_factory=list)  # with class_sensitivity
    sanity: list[tuple[str, dict]] = field(default_factory=list)  # with sanity_checks: (method, sanity_checks' record)

    def result(self, method: str) -> EvaluationResult:
        return dict(self.rows)[method]

    def markdown(self) -> str:
        return markdown(self.rows, self.title, self.classes, self.sensitivity) + "\n".join(sanity_markdown(self.sanity))

    def per_class(self, method: str) -> list[ClassRow]:
        """``method``'s rows per class (with ``per_class``)."""
        return dict(self.classes)[method]


def compare(config: Config, config_file: str | None = None) -> Comparison:
    """Evaluate every method of ``compare.methods`` on the ``eval`` section's list under its protocol (ROAD on
    unless ``eval.road`` is false); rank 0 writes ``compare.{md,csv,json,png}`` to the output folder (default:
    ``compare/`` beside the checkpoint, or ``<output_dir>/compare`` without one). ``config_file``: the YAML file the
    report names. A CAM method may be ``name@layer`` (rows ``name (layer)``); any other trained AM of the family
    joins as ``label=checkpoint`` (its version and layers from the checkpoint, the classifier the config's)."""
    methods = compare_methods(config)
    config = with_road(config, default=True)
    spec = config.eval
    checkpoint = newest_epoch_checkpoint(spec.checkpoint) if spec.checkpoint else None
    with open_evaluation(config) as data:
        if "tame" in methods:
            data.model.load_attention(checkpoint)
            data.model.eval()
        rows, images, classes, sensitivity, sanity = [], [], [], [], []
        count = config.compare.sanity_checks
        samples = first_images(data.batches(), count, data.dist) if count else None
        for method in methods:
            name, label = split_method(method)[0], row_label(method)
            what = f"tame with checkpoint {checkpoint}" if name == "tame" else label
            with _entry(data, spec, method) as (explained, model, options):
                with create_explainer(explained, model, **options) as explainer:
                    result, method_images = data.evaluate(explainer, label, what)
                    if spec.class_sensitivity:
                        tiles, count = spec.class_sensitivity, spec.composites
                        sensitivity.append((label, measure_list(explainer, data.cfg, data.loader, tiles, count)))
                if samples is not None:
                    sanity.append((label, sanity_checks(model, explained, samples, options)))
            rows.append((label, result))
            if method_images is not None:
                images.append((label, method_images))
                classes += [(label, data.class_rows(method_images))] if spec.per_class else []
        if spec.out:
            out = Path(spec.out)
        elif checkpoint is not None:
            out = checkpoint.parent / "compare"
        else:
            out = expand_path(data.cfg.output_dir, "output_dir") / "compare"
        title = f"{data.cfg.model.name} on {data.list_file.name}"
        comparison = Comparison(rows, title, out, checkpoint, data.dist.is_main, images, classes, sensitivity, sanity)
        if comparison.is_main:
            _write(comparison, spec, config_file, data.list_file, class_names(data.cfg))
    return comparison


@contextmanager
def _entry(data: EvaluationData, spec: EvalConfig, method: str) -> Iterator[tuple[str, TameModel, dict]]:
    """(method name, model, explainer options) of one entry: a method runs on the evaluation's model; a
    ``label=checkpoint`` entry is "tame" on an AM of its own over the config's classifier."""
    trained = trained_entry(method)
    if trained is None:
        yield split_method(method)[0], data.model, method_options(spec, method)
        return
    model = trained_model(data, newest_epoch_checkpoint(trained[1]))
    try:
        yield "tame", model, {}
    finally:
        model.taps.close()


def trained_model(data: EvaluationData, checkpoint: Path) -> TameModel:
    """A TameModel over ``data``'s classifier with the layers, version, token transform and auxiliary network (P-TAME)
    saved in ``checkpoint`` (which it loads: a checkpoint for another backbone is refused as
    :meth:`TameModel.load_attention` does)."""
    _, meta = read_attention_file(checkpoint)
    layers, version = meta.get("layers", data.cfg.model.layers), meta.get("version", data.cfg.model.version)
    token_transform = meta.get("token_transform", data.cfg.model.token_transform)
    crop = data.cfg.data.crop or data.model.classifier.preprocessing.crop
    aux = network_from_meta(meta, data.model.classifier.preprocessing)  # P-TAME's auxiliary network, if any
    model = TameModel(
        data.model.classifier, layers, version, input_size=crop, token_transform=token_transform, feature_net=aux
    )
    try:
        model.to(data.dist.device).eval()
        model.load_attention(checkpoint)
    except BaseException:
        model.taps.close()  # its hooks sit on the shared classifier
        raise
    return model


def _write(
    comparison: Comparison, spec: EvalConfig, config_file: str | None, list_file: Path, names: list[str]
) -> None:
    from tame.viz.plots import cascade_chart, comparison_chart

    out, rows = comparison.out, comparison.rows
    if spec.per_image:
        write_text_atomic(spec.per_image, image_csv(comparison.images, spec.levels, "method", names))
    if spec.per_class:
        write_text_atomic(out / PER_CLASS, class_csv(comparison.classes, "method"))
    if comparison.sensitivity:
        write_text_atomic(out / SENSITIVITY, sensitivity_csv(comparison.sensitivity, "method"))
    write_text_atomic(out / "compare.md", comparison.markdown())
    write_text_atomic(out / "compare.csv", csv_text(rows, first="method"))
    report = compare_report(
        config_file, comparison.checkpoint, list_file, rows, comparison.classes, comparison.sensitivity
    )
    if comparison.sanity:
        report = json.dumps(json.loads(report) | {"sanity": dict(comparison.sanity)}, indent=1)
        write_text_atomic(out / SANITY[0], sanity_csv(comparison.sanity))
        cascade_chart(comparison.sanity, out / SANITY[1], list(SIMILARITIES))
    write_text_atomic(out / "compare.json", report)
    sensitivity = dict(comparison.sensitivity)
    table = {
        method: summary_columns(result) | (sensitivity[method].columns() if method in sensitivity else {})
        for method, result in rows
    }
    comparison_chart(table, chart_panels(spec.road), out / "compare.png", comparison.title)
