"""TAME against the baselines on one list, under one protocol: a markdown + CSV table, a JSON and a bar chart.

Every method sees the same images through the same classifier: AD / IC at 100, 50, 15 %, ROAD (MoRF / LeRF
accuracy at 10..90 % removed) when asked for, pointing game and energy-based pointing game with boxes, and the
milliseconds one explanation takes per image. :func:`compare` writes ``<out>/compare.{md,csv,json,png}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tame.baselines import create_explainer
from tame.checkpoints import newest_epoch_checkpoint
from tame.config import expand_path
from tame.evaluation.loop import EvaluationResult
from tame.evaluation.run import open_evaluation
from tame.evaluation.spec import CompareSpec, method_label, split_method
from tame.evaluation.tables import chart_panels, compare_report, csv_text, markdown, summary_columns
from tame.io import write_text_atomic

FILES = ("compare.md", "compare.csv", "compare.json", "compare.png")


@dataclass
class Comparison:
    """(method, result) rows in the order asked for, the table's title, and the folder they were written to."""

    rows: list[tuple[str, EvaluationResult]]
    title: str
    out: Path
    checkpoint: Path | None  # the TAME weights evaluated (None without tame)
    is_main: bool = True  # rank 0 (the process that wrote the files)

    def result(self, method: str) -> EvaluationResult:
        return dict(self.rows)[method]

    def markdown(self) -> str:
        return markdown(self.rows, self.title)


def compare(spec: CompareSpec) -> Comparison:
    """Evaluate every method of ``spec`` on its list; rank 0 writes ``compare.{md,csv,json,png}`` to the output
    folder (default: ``compare/`` beside the checkpoint, or ``<output_dir>/compare`` without one)."""
    checkpoint = newest_epoch_checkpoint(spec.checkpoint) if spec.checkpoint else None
    with open_evaluation(spec) as data:
        if "tame" in spec.methods:
            data.model.load_attention(checkpoint)
            data.model.eval()
        rows = []
        for method in spec.methods:
            name, label = split_method(method)[0], method_label(method)
            with create_explainer(name, data.model, **spec.method_options(method)) as explainer:
                rows.append((label, data.evaluate(explainer, label)))
        if spec.out:
            out = Path(spec.out)
        elif checkpoint is not None:
            out = checkpoint.parent / "compare"
        else:
            out = expand_path(data.cfg.output_dir, "output_dir") / "compare"
        comparison = Comparison(rows, f"{data.cfg.model.name} on {data.list_file.name}", out, checkpoint)
        comparison.is_main = data.dist.is_main
        if comparison.is_main:
            _write(comparison, spec, data.list_file)
    return comparison


def _write(comparison: Comparison, spec: CompareSpec, list_file: Path) -> None:
    from tame.viz.plots import comparison_chart

    out, rows = comparison.out, comparison.rows
    write_text_atomic(out / "compare.md", comparison.markdown())
    write_text_atomic(out / "compare.csv", csv_text(rows, first="method"))
    write_text_atomic(out / "compare.json", compare_report(spec.config_name(), comparison.checkpoint, list_file, rows))
    table = {method: summary_columns(result) for method, result in rows}
    comparison_chart(table, chart_panels(spec.road), out / "compare.png", comparison.title)
