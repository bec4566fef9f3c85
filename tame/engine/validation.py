"""Validation inside ``tame train``: after every epoch (and every ``train.val_every`` steps) on ``data.val_list``.

What one validation measures on the first ``train.val_samples`` images of the list (0: all), sharded over the ranks
as ``tame eval`` shards (rank r reads positions r, r+W, ...; the sums are all-reduced):

- the loss terms ``loss``, ``ce``, ``area``, ``var`` (the training step without its update; the ``batch``
  regulariser spans the global validation batch, the labels gathered from every rank as in training, so the values
  are those of one process whatever the number of ranks);
- AD / IC at 100, 50, 15 % through :func:`tame.evaluation.loop.evaluate` with a :class:`TameExplainer`;
- ``accuracy``: the classifier's top-1 against the list's labels, in percent (it is frozen: a check on the data);
- with ``train.val_class_sensitivity`` (2 or 4), ``CS selective``, ``CS mass``, ``CS peak``: the class sensitivity
  of TAME's maps on composites of that many of those images (:mod:`tame.evaluation.class_sensitivity`; every rank
  computes the same, from the whole list).

The training does not notice: the AM's BatchNorm runs in eval mode (running statistics used, not updated) and
torch's random state is restored afterwards, so a run's weights are the same with validation or without.

The best epoch by ``train.select_by`` (``tame.config.VAL_METRICS``; AD lower, IC higher is better) is kept as
``best.pt`` beside ``epoch_N.pt``: a hard link to that epoch's checkpoint (a copy where links are not possible),
renamed into place. The history is in ``train_record.json`` (``val``, ``best``); a resumed run reads the best so
far back from it. ``best.pt`` matches no ``epoch_N.pt`` / ``step_S.pt`` name, so resume and ``tame eval --checkpoint
DIR`` never pick it up; ``tame eval --checkpoint DIR/best.pt`` evaluates it.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from tame import distributed
from tame.checkpoint.format import rng_state, set_rng_state
from tame.checkpoint.naming import BEST_FILE, epoch_file
from tame.config import VAL_METRICS, Config, expand_path
from tame.distributed import Dist
from tame.engine.run_log import LOSS_KEYS, RunLog
from tame.errors import TameError
from tame.evaluation.class_sensitivity import measure_list
from tame.evaluation.loop import MetricSums, evaluate
from tame.evaluation.samples import SampleLog
from tame.io import atomic_path
from tame.methods import TameExplainer
from tame.metrics import ad_ic
from tame.metrics.class_sensitivity import TILES
from tame.models import TameModel

logger = logging.getLogger(__name__)
PANEL_SIZE = 8  # validation images whose maps the dashboards show at every validation (the same ones each time)


def validation_paths(cfg: Config) -> tuple[Path, Path] | None:
    """(image root, list) of ``data.val_list``, checked before any work starts; None when no list is set."""
    if not cfg.data.val_list:
        return None
    without = "data.val_list=null to train without validation"
    try:
        list_file = expand_path(cfg.data.val_list, "data.val_list")
        root = expand_path(cfg.data.val_root, "data.val_root")
    except TameError as err:
        raise TameError(f"{str(err).removesuffix(')')}; or {without})") from None
    if not list_file.is_file():
        raise TameError(f"config key data.val_list: list file {list_file} not found (set the path, or {without})")
    if not root.is_dir():
        raise TameError(
            f"config key data.val_root: image folder {root} not found (set data.val_root=/path/to/images, or {without})"
        )
    return root, list_file


class Validation:
    """Runs the validations of one training run and keeps its best epoch (every rank measures, rank 0 records)."""

    def __init__(self, cfg: Config, dist: Dist, model: TameModel, loader, output_dir: Path, steps_per_epoch: int):
        self.cfg, self.dist, self.model, self.loader = cfg, dist, model, loader
        self.output_dir, self.steps_per_epoch = output_dir, steps_per_epoch
        self.log: RunLog | None = None
        self.best: dict | None = None  # the record's entry of the best epoch so far
        self.panel: torch.Tensor | None = None  # [n, 3, H, W]: the list's first validation images (rank 0)
        self._panel_fixed = False  # collected (during the first validation): the same images ever after

    @classmethod
    def build(cls, cfg: Config, dist: Dist, model: TameModel, output_dir: Path, steps_per_epoch: int) -> Validation:
        """The validation of a run (its loader built and its list checked now); a no-op one without a list."""
        if cfg.train.val_class_sensitivity not in (0, *TILES):
            got = cfg.train.val_class_sensitivity
            raise TameError(f"config key train.val_class_sensitivity: 2 or 4 images per composite (0: off), got {got}")
        paths = validation_paths(cfg)
        if paths is None:
            logger.info("no validation during training: data.val_list is not set")
            return cls(cfg, dist, model, None, output_dir, steps_per_epoch)
        from tame.data.loaders import build_loader

        root, list_file = paths
        loader = build_loader(
            cfg.data,
            list_file,
            root,
            train=False,
            dist=dist,
            num_classes=model.num_classes,
            max_samples=cfg.train.val_samples or None,
        )
        return cls(cfg, dist, model, loader, output_dir, steps_per_epoch)

    @property
    def enabled(self) -> bool:
        return self.loader is not None

    def start(self, log: RunLog, start_step: int) -> None:
        """Take the best epoch so far from the (resumed) record; validate a resumed epoch end that has none yet."""
        self.log = log
        if not self.enabled:
            return
        for entry in log.record["val"]:  # rank 0's record; empty on the other ranks
            if entry.get("epoch") and self._better(entry):
                self.best = entry
        log.best(self.best)
        epoch, within = divmod(start_step, self.steps_per_epoch)
        missing = bool(epoch and not within and not any(e.get("epoch") == epoch for e in log.record["val"]))
        if distributed.broadcast_object(self.dist, missing):  # every rank validates, or none
            self.epoch_end(epoch, start_step)  # the run stopped between writing epoch_N.pt and validating it
        else:
            self._link_best()  # the run may have stopped between recording a best epoch and linking it

    def after_step(self, step: int) -> None:
        """Validate every ``train.val_every`` steps within epochs (epoch ends: :meth:`epoch_end`)."""
        every = self.cfg.train.val_every
        if self.enabled and every and step % every == 0 and step % self.steps_per_epoch:
            self.run(step, epoch=None)

    def epoch_end(self, epoch: int, step: int) -> None:
        """Validate the checkpoint just written for ``epoch``; a better epoch becomes ``best.pt``."""
        if not self.enabled:
            return
        entry = self.run(step, epoch)
        if self.dist.is_main and self._better(entry):
            self.best = entry
            self.log.best(entry)
            self._link_best()
        elif self.dist.is_main and not (self.output_dir / BEST_FILE).is_file():
            self._link_best()  # best.pt was removed during the run: made again from the best epoch's checkpoint
        if epoch == self.cfg.train.epochs:
            self.summary()

    def run(self, step: int, epoch: int | None) -> dict:
        """Measure (every rank), then log and record (rank 0); returns the record's entry."""
        values = self.measure(step)
        entry = {"step": step, "epoch": epoch, **values}
        self.log.validation(step, epoch, values)
        when = f"epoch {epoch} (step {step})" if epoch else f"step {step}"
        shown = ", ".join(f"{k}={values[k]:.4g}" for k in ("AD(15%)", "IC(15%)", "loss", "accuracy"))
        logger.info("validation at %s: %s (%d images, %.1f s)", when, shown, values["images"], values["seconds"])
        return entry

    def measure(self, step: int) -> dict[str, float]:
        """The validation's numbers (and the panel's maps to the dashboards at ``step``); the AM in eval mode
        meanwhile, torch's random state restored afterwards."""
        model, device = self.model, self.dist.device
        rng, gather, started = rng_state(device), model.label_gather, time.perf_counter()
        # the global batch's labels, as in training (ranks may hold different numbers of real samples)
        model.label_gather = distributed.varying_label_gatherer(self.dist) if self.dist.distributed else None
        try:
            explainer = TameExplainer(model)  # puts the model in eval mode
            sums = MetricSums(["images", "correct", *LOSS_KEYS], device)
            samples = SampleLog(ad_ic.LEVELS)  # the explained class of each real image: the accuracy
            with torch.no_grad():
                result = evaluate(explainer, self._batches(sums), samples=samples)
                sums.add("correct", samples.correct())
                tiles = self.cfg.train.val_class_sensitivity
                sensitivity = measure_list(explainer, self.cfg, self.loader, tiles).columns() if tiles else {}
                self._panel_fixed = True
                if self.panel is not None:
                    explanation = model.explain(self.panel)
                    self.log.explanations(step, self.panel, explanation.maps, explanation.classes, tag="val/panel")
        finally:
            model.label_gather = gather
            model.train()
            set_rng_state(rng, device)
        totals = sums.reduced()
        count = max(totals["images"], 1.0)
        values = {key: totals[key] / count for key in LOSS_KEYS}
        values.update(result.columns())
        values.pop("ms/img", None)
        values.update(sensitivity, accuracy=100.0 * totals["correct"] / count, images=int(totals["images"]))
        values["seconds"] = time.perf_counter() - started
        return values

    def _batches(self, sums: MetricSums) -> Iterator:
        """The loader's batches for :func:`evaluate`, adding each batch's losses to ``sums`` (data flows one way: the
        consumer's explanations are read back from its sample log, not from here).

        Padding (label -1) is left to ``evaluate`` to drop; the loss terms and the panel take the real samples.
        """
        self.loader.set_epoch(0)
        model = self.model
        for k, (images, labels) in enumerate(self.loader):
            keep = labels >= 0
            real, targets = images[keep], labels[keep]
            if real.shape[0]:
                losses = model.training_step(real, targets)  # batch means
                for key in LOSS_KEYS:
                    sums.add(key, losses[key].float() * real.shape[0])
                sums.add("images", real.shape[0])
            elif model.label_gather is not None and model.regulariser == "batch":
                model.label_gather(targets)  # no image here: still take part in the batch's label gather
            self._collect_panel(k, images, labels)
            yield images, labels

    def _collect_panel(self, k: int, images: torch.Tensor, labels: torch.Tensor) -> None:
        """Keep the list's first ``PANEL_SIZE`` validation images (during the first validation only), whatever the
        number of ranks: batch ``k`` of every rank, gathered in list order (every rank takes part)."""
        needed = math.ceil(PANEL_SIZE / (self.loader.batch_size * self.dist.world_size))  # batches, the same on all
        if self._panel_fixed or k >= needed:
            return
        images = distributed.gather_interleaved(self.dist, images)
        labels = distributed.gather_interleaved(self.dist, labels)
        if self.dist.is_main and self.log.enabled:
            take = images[labels >= 0][:PANEL_SIZE].to(self.dist.device)
            self.panel = take if self.panel is None else torch.cat([self.panel, take])[:PANEL_SIZE]

    def _better(self, entry: dict) -> bool:
        """Whether ``entry`` beats the best so far by ``train.select_by`` (a tie keeps the earlier epoch)."""
        key = self.cfg.train.select_by
        value = entry.get(key)
        if value is None or math.isnan(value):
            return False
        if self.best is None:
            return True
        lower = VAL_METRICS[key]
        return value < self.best[key] if lower else value > self.best[key]

    def _link_best(self) -> None:
        """``best.pt``: the best epoch's checkpoint (hard link, else copy), renamed into place (rank 0)."""
        if not self.dist.is_main or self.best is None:
            return
        source = epoch_file(self.output_dir, self.best["epoch"])
        if not source.is_file():
            logger.warning("best epoch %s has no checkpoint %s; best.pt not updated", self.best["epoch"], source)
            return
        with atomic_path(self.output_dir / BEST_FILE, suffix="") as tmp:
            try:
                os.link(source, tmp)
            except OSError:  # a file system without hard links
                shutil.copyfile(source, tmp)

    def summary(self) -> None:
        """Log which epoch was best and its numbers (after the last epoch)."""
        if not (self.enabled and self.dist.is_main):
            return
        if self.best is None:
            logger.info("no best epoch: no validation finished with a finite %s", self.cfg.train.select_by)
            return
        if not (self.output_dir / BEST_FILE).is_file():  # removed, and its epoch's checkpoint with it
            logger.warning(
                "best epoch by %s: %d, but %s is missing", self.cfg.train.select_by, self.best["epoch"], BEST_FILE
            )
            return
        shown = ", ".join(f"{k}={v:.4g}" for k, v in self.best.items() if k not in ("step", "epoch"))
        logger.info(
            "best epoch by %s: %d (step %d) -> %s; %s",
            self.cfg.train.select_by,
            self.best["epoch"],
            self.best["step"],
            self.output_dir / BEST_FILE,
            shown,
        )
