"""An evaluation from a config to files: process group, model, loader, every checkpoint, the CSV and JSON.

:func:`run_evaluation` is what ``tame eval`` does (and what a notebook calls, with a config from
:func:`tame.config.load_config`: its ``eval`` section says what to evaluate); :func:`open_evaluation` gives the
resolved config, model and batches to anything else that evaluates on a list (:func:`tame.evaluation.compare`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tame.checkpoint.naming import checkpoints_to_evaluate
from tame.config import Config, EvalConfig, expand_path
from tame.data.boxes import Boxes, read_boxes, with_regions
from tame.distributed import Dist
from tame.evaluation.class_sensitivity import ClassSensitivity, measure_list
from tame.evaluation.loop import EvaluationResult, evaluate
from tame.evaluation.samples import ClassRow, ImageRow, SampleLog, class_names, gather_images, per_class
from tame.evaluation.spec import eval_method, method_options, with_road
from tame.evaluation.tables import class_csv, csv_text, eval_report, image_csv, sensitivity_csv
from tame.io import write_text_atomic
from tame.methods import Explainer, create_explainer
from tame.metrics import road
from tame.models import TameModel
from tame.models.registry import build_classifier
from tame.session import run_session

if TYPE_CHECKING:
    from tame.data.sharding import Loader

logger = logging.getLogger(__name__)


@dataclass
class EvaluationData:
    """What an evaluation resolves before it starts: config, process, model and the batches to iterate."""

    options: EvalConfig  # cfg.eval
    cfg: Config
    dist: Dist
    model: TameModel
    loader: Loader
    list_file: Path
    boxes: Boxes | None

    def batches(self) -> Iterable:
        if self.boxes is None:
            return self.loader
        return with_regions(self.loader, self.boxes, (self.cfg.data.crop, self.cfg.data.crop))

    @property
    def wants_images(self) -> bool:
        """Whether per-image rows are recorded (for ``per_image`` or ``per_class``)."""
        return bool(self.options.per_image or self.options.per_class)

    def evaluate(
        self, explainer: Explainer, desc: str, name: str | None = None
    ) -> tuple[EvaluationResult, list[ImageRow] | None]:
        """:func:`evaluate` of ``explainer`` on the list, under the options' protocol, and with ``per_image`` or
        ``per_class`` every image's row (all ranks', in list order, on every rank; else None). ``name``: what a
        failure names (the method and checkpoint; default ``desc``)."""
        log = SampleLog(self.options.levels) if self.wants_images else None
        result = self._evaluate(explainer, desc, name, log)
        if log is None:
            return result, None
        plan = self.loader.plan()
        indices = plan.indices[~plan.padding].tolist()
        rows = log.rows(indices, [self.loader.entries[i].path for i in indices])
        return result, gather_images(self.dist, rows)

    def _evaluate(self, explainer: Explainer, desc: str, name: str | None, log: SampleLog | None) -> EvaluationResult:
        options = self.options
        plan = self.loader.plan()
        explainer.read_positions(plan.indices[~plan.padding].tolist())  # the images it explains, in reading order
        return evaluate(
            explainer,
            self.batches(),
            levels=options.levels,
            road_levels=road.LEVELS if options.road else (),
            road_workers=options.road_workers,
            localisation=self.boxes is not None,
            pointing_tolerance=options.pointing_tolerance,
            chunk=options.chunk,
            total=len(self.loader),
            progress=self.dist.is_main and options.progress,
            desc=desc,
            name=name,
            samples=log,
        )

    def class_rows(self, images: list[ImageRow] | None) -> list[ClassRow] | None:
        """Per-class rows of ``images`` (grouped by the list's label) when ``per_class`` was asked for."""
        if not self.options.per_class or images is None:
            return None
        return per_class(images, self.options.levels, class_names(self.cfg), localisation=self.boxes is not None)


def _checkpoint_file(checkpoint) -> Path | None:
    """The file whose saved preprocessing applies: the checkpoint itself, or a folder's newest epoch."""
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    if path.is_dir():
        found = checkpoints_to_evaluate(path)
        return found[0][1] if found else None  # every epoch of a run saves the same preprocessing
    return path if path.is_file() else None


@contextmanager
def open_evaluation(cfg: Config) -> Iterator[EvaluationData]:
    """Config (validated: :func:`tame.config.load_config`), process group, model (classifier + an untrained AM)
    and loader of the ``eval`` section's list; the process group ends with it."""
    from tame.data import build_loader

    options = cfg.eval
    list_file = (
        expand_path(str(options.list_file), "--list")
        if options.list_file
        else expand_path(cfg.data.eval_list, "data.eval_list")
    )
    root = expand_path(str(options.root), "--root") if options.root else expand_path(cfg.data.val_root, "data.val_root")
    checkpoint = _checkpoint_file(options.checkpoint)
    with run_session(cfg, device=options.device, global_batch_size=options.batch_size) as session:
        cfg, dist = session.cfg, session.dist
        torch.manual_seed(cfg.train.seed)  # a classifier without weights (pretrained: false) is the same every run
        cfg, classifier = build_classifier(cfg, checkpoint)  # auto sizes: the checkpoint's saved, else the model's
        boxes = read_boxes(options.boxes, cfg.data.resize, cfg.data.crop) if options.boxes else None  # resolved sizes
        model = TameModel.from_config(cfg.model, data_cfg=cfg.data, classifier=classifier).to(dist.device).eval()
        loader = build_loader(
            cfg.data,
            list_file,
            root,
            train=False,
            dist=dist,
            num_classes=model.num_classes,
            max_samples=options.max_samples,
        )
        yield EvaluationData(cfg.eval, cfg, dist, model, loader, list_file, boxes)


@dataclass
class EvaluationRun:
    """The rows of one ``tame eval``: (epoch label, result) per checkpoint ("" for a baseline), and where they are."""

    method: str
    list_file: Path
    out: Path
    rows: list[tuple[str, EvaluationResult]] = field(default_factory=list)
    checkpoints: list[Path | None] = field(default_factory=list)
    is_main: bool = True  # rank 0 (the process that wrote the files)
    # with per_image / per_class: (epoch label, every image's row) and (epoch label, per-class rows)
    images: list[tuple[str, list[ImageRow]]] = field(default_factory=list)
    classes: list[tuple[str, list[ClassRow]]] = field(default_factory=list)
    sensitivity: list[tuple[str, ClassSensitivity]] = field(default_factory=list)  # with class_sensitivity

    @property
    def name(self) -> str:
        return f"{self.method}_{self.list_file.stem}"

    @property
    def csv_path(self) -> Path:
        return self.out / f"{self.name}.csv"

    @property
    def json_path(self) -> Path:
        return self.out / f"{self.name}.json"

    @property
    def per_class_path(self) -> Path:
        return self.out / f"{self.name}_per_class.csv"

    @property
    def sensitivity_path(self) -> Path:
        return self.out / f"{self.name}_class_sensitivity.csv"


def run_evaluation(config: Config, config_file: str | None = None) -> EvaluationRun:
    """Evaluate ``eval.method`` at each of its checkpoints (every ``epoch_N.pt`` of a folder, in order), under the
    ``eval`` section's protocol; ``config_file``: the YAML file the reports name (None: none).

    Rank 0 rewrites ``<out>/<method>_<list>.csv`` (the reference's columns) and ``.json`` (every number) after each
    checkpoint, so a later failure loses nothing already evaluated; with ``per_image`` that CSV (a row per checkpoint
    and image), with ``per_class`` ``<out>/<method>_<list>_per_class.csv``. Every rank returns the same rows.
    """
    method = eval_method(config)
    config = with_road(config, default=False)
    spec = config.eval
    checkpoints = checkpoints_to_evaluate(spec.checkpoint) if method == "tame" else [("", None)]
    with open_evaluation(config) as data:
        if spec.checkpoint and method != "tame" and data.dist.is_main:
            logger.warning("%s does not use --checkpoint (it explains the classifier alone)", method)
        out = Path(spec.out) if spec.out else default_out(method, spec.checkpoint, data.cfg)
        run = EvaluationRun(method, data.list_file, out, is_main=data.dist.is_main)
        for label, path in checkpoints:
            if path is not None:
                data.model.load_attention(path)
                data.model.eval()
            name = f"{method} with checkpoint {path}" if path is not None else method
            with create_explainer(method, data.model, **method_options(spec, method)) as explainer:
                result, images = data.evaluate(explainer, f"{method} epoch {label}" if label else method, name)
                if spec.class_sensitivity:
                    tiles, count = spec.class_sensitivity, spec.composites
                    run.sensitivity.append((label, measure_list(explainer, data.cfg, data.loader, tiles, count)))
            run.rows.append((label, result))
            run.checkpoints.append(path)
            if images is not None:
                run.images.append((label, images))
                run.classes += [(label, data.class_rows(images))] if spec.per_class else []
            if run.is_main:
                _write_run(run, config_file, data)
    return run


def _write_run(run: EvaluationRun, config_file: str | None, data: EvaluationData) -> None:
    spec = data.options
    write_text_atomic(run.csv_path, csv_text(run.rows))
    write_text_atomic(
        run.json_path,
        eval_report(run.method, config_file, data.list_file, run.rows, run.checkpoints, run.classes, run.sensitivity),
    )
    if spec.per_image:
        write_text_atomic(spec.per_image, image_csv(run.images, spec.levels, "epoch", class_names(data.cfg)))
    if spec.per_class:
        write_text_atomic(run.per_class_path, class_csv(run.classes, "epoch"))
    if run.sensitivity:
        write_text_atomic(run.sensitivity_path, sensitivity_csv(run.sensitivity, "epoch"))


def default_out(method: str, checkpoint: str | Path | None, cfg: Config) -> Path:
    """``eval/`` next to the checkpoints for TAME, ``<output_dir>/eval`` for the baselines."""
    if method == "tame":
        path = Path(checkpoint)
        return (path if path.is_dir() else path.parent) / "eval"
    return expand_path(cfg.output_dir, "output_dir") / "eval"
