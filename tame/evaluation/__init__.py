"""Evaluating explanation maps as a typed API: AD / IC at 100, 50, 15 % (docs/METHOD.md), ROAD, localisation.

  from tame.evaluation import EvalSpec, evaluate_spec, CompareSpec, compare
  run = evaluate_spec(EvalSpec(config="configs/resnet50.yaml", checkpoint="snapshots/resnet50/"))  # every epoch
  table = compare(CompareSpec(config="configs/synthetic.yaml", checkpoint="snapshots/synthetic/",
                              methods=["tame", "gradcam", "random"], boxes="data/synthetic/boxes.json"))

:func:`evaluate` is the metric loop over any batches; :func:`evaluate_spec` and :func:`compare` resolve a config,
start the process group (under torchrun), build the model and loader and write their CSV / JSON / markdown / chart.
``tame eval`` and ``tame compare`` (``tame.commands``) only turn their arguments into these specs.
"""

from tame.evaluation.compare import Comparison, compare
from tame.evaluation.loop import AD_IC_COLUMNS, EvaluationResult, MetricSums, evaluate
from tame.evaluation.run import EvaluationData, EvaluationRun, default_out, evaluate_spec, open_evaluation
from tame.evaluation.spec import CompareSpec, EvalOptions, EvalSpec
from tame.evaluation.tables import csv_text, markdown, summary_columns, summary_table

__all__ = [
    "AD_IC_COLUMNS",
    "CompareSpec",
    "Comparison",
    "EvalOptions",
    "EvalSpec",
    "EvaluationData",
    "EvaluationResult",
    "EvaluationRun",
    "MetricSums",
    "compare",
    "csv_text",
    "default_out",
    "evaluate",
    "evaluate_spec",
    "markdown",
    "open_evaluation",
    "summary_columns",
    "summary_table",
]
