"""Evaluating explanation maps as a typed API: AD / IC at 100, 50, 15 % (docs/METHOD.md), ROAD, localisation.

  from tame.config import load_config
  from tame.evaluation import compare, run_evaluation
  run = run_evaluation(load_config("configs/resnet50.yaml", ["eval.checkpoint=snapshots/resnet50/"]))  # every epoch
  table = compare(load_config("configs/synthetic.yaml", values={"eval.checkpoint": "snapshots/synthetic/",
                  "compare.methods": ["tame", "gradcam", "random"], "eval.boxes": "data/synthetic/boxes.json"}))

:func:`evaluate` is the metric loop over any batches; :func:`run_evaluation` and :func:`compare` take a config
(its ``eval`` and ``compare`` sections say what to evaluate and how), start the process group (under torchrun),
build the model and loader and write their CSV / JSON / markdown / chart. ``tame eval`` and ``tame compare``
(``tame.commands``) only load the config with their flags (generated from those sections) over it.
"""

from tame.evaluation.compare import Comparison, compare
from tame.evaluation.loop import AD_IC_COLUMNS, EvaluationResult, MetricSums, evaluate
from tame.evaluation.run import EvaluationData, EvaluationRun, default_out, open_evaluation, run_evaluation
from tame.evaluation.tables import csv_text, markdown, summary_columns, summary_table

__all__ = [
    "AD_IC_COLUMNS",
    "Comparison",
    "EvaluationData",
    "EvaluationResult",
    "EvaluationRun",
    "MetricSums",
    "compare",
    "csv_text",
    "default_out",
    "evaluate",
    "markdown",
    "open_evaluation",
    "run_evaluation",
    "summary_columns",
    "summary_table",
]
