"""Where a training run shows its progress: tqdm, wandb, tensorboard, ``train_record.json`` and a loss-curve PNG.

Only rank 0 logs (``RunLog(enabled=False)`` on the other ranks turns every method into a no-op). wandb is
``offline`` by default (nothing needs a network; ``wandb sync`` uploads later) and ``disabled`` in tests.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from tame.config import Config
from tame.distributed import Dist, all_reduce_mean
from tame.io import write_text_atomic

logger = logging.getLogger(__name__)
LOSS_KEYS = ("loss", "ce", "area", "var")
RECORD_FILE = "train_record.json"
CURVE_FILE = "loss_curve.png"


class NonFiniteLoss(Exception):
    """A loss came out NaN or infinite at ``step``."""

    def __init__(self, step: int, values: dict[str, float]) -> None:
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        super().__init__(f"non-finite loss at step {step} ({shown})")


class LossWindow:
    """The losses of the steps since the last flush, kept on the device (no host sync per step)."""

    def __init__(self) -> None:
        self._rows: list[torch.Tensor] = []
        self._steps: list[int] = []
        self._lr = 0.0
        self._started = time.perf_counter()
        self._epoch_sum = torch.zeros(len(LOSS_KEYS), dtype=torch.float64)
        self._epoch_steps = 0

    def add(self, step: int, losses: dict[str, torch.Tensor], lr: float) -> None:
        self._rows.append(torch.stack([losses[k].detach().float() for k in LOSS_KEYS]))
        self._steps.append(step)
        self._lr = lr

    def flush(self, dist: Dist) -> dict[str, float]:
        """Means over the window and over ranks of each loss, the last LR and the speed; {} for an empty window.

        Raises :class:`NonFiniteLoss` naming the first bad step. Every rank must call this at the same steps
        (it all-reduces), so all ranks take the same decision.
        """
        if not self._rows:
            return {}
        table = all_reduce_mean(dist, torch.stack(self._rows)).cpu()  # [steps, 4]
        finite = torch.isfinite(table).all(dim=1)
        if not finite.all():
            first = int((~finite).nonzero()[0, 0])
            raise NonFiniteLoss(self._steps[first], dict(zip(LOSS_KEYS, table[first].tolist())))
        elapsed = time.perf_counter() - self._started
        self._epoch_sum += table.double().sum(dim=0)
        self._epoch_steps += len(self._steps)
        values = dict(zip(LOSS_KEYS, table.mean(dim=0).tolist()))
        values.update(lr=self._lr, steps_per_s=len(self._steps) / max(elapsed, 1e-9))
        self._rows, self._steps, self._started = [], [], time.perf_counter()
        return values

    def epoch_summary(self) -> dict[str, float]:
        """Mean losses over the flushed steps since the last call."""
        means = (self._epoch_sum / max(self._epoch_steps, 1)).tolist()
        self._epoch_sum.zero_()
        self._epoch_steps = 0
        return dict(zip(LOSS_KEYS, means))


class RunLog:
    """Progress bar, scalars, explanation images and the per-epoch record of one run (rank 0 only)."""

    def __init__(
        self,
        cfg: Config,
        output_dir: Path,
        steps_per_epoch: int = 0,
        *,
        enabled: bool,
        start_step: int,
        device: torch.device,
    ) -> None:
        self.cfg = cfg
        self.output_dir = output_dir
        self.enabled = enabled
        self.device = device
        self.bar = None
        self.record = {"epochs": [], "steps": [], "val": []}
        self._wandb = None
        self._tensorboard = None
        if not enabled:
            return
        record_path = output_dir / RECORD_FILE
        if start_step > 0 and record_path.is_file():  # resumed: keep the history up to the checkpoint
            old = json.loads(record_path.read_text())
            self.record["epochs"] = [e for e in old.get("epochs", []) if e["step"] <= start_step]
            self.record["steps"] = [s for s in old.get("steps", []) if s["step"] <= start_step]
            self.record["val"] = [v for v in old.get("val", []) if v["step"] <= start_step]
        if cfg.log.wandb != "disabled":
            self._wandb = _start_wandb(cfg, output_dir)
        if cfg.log.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(str(output_dir / "tensorboard"), purge_step=start_step or None)
        # who runs it: `tame runs` tells a live run from a killed one (state "running" and a process that is gone)
        self.record["run"] = dict(state="running", pid=os.getpid(), host=socket.gethostname(), since=time.time())
        self.record["run"]["steps_per_epoch"] = steps_per_epoch
        write_text_atomic(output_dir / RECORD_FILE, json.dumps(self.record, indent=1))

    # -- terminal ----------------------------------------------------------------------------------------------
    def progress(self, iterable: Iterable, *, total: int, initial: int, desc: str) -> Iterator:
        """A tqdm bar over the whole run (its ETA is the run's), or the bare iterable on other ranks."""
        if not self.enabled:
            return iter(iterable)
        from tqdm.auto import tqdm

        if self.bar is None:
            self.bar = tqdm(
                total=total, initial=initial, unit="step", dynamic_ncols=True, smoothing=0.05, mininterval=1.0
            )
        self.bar.set_description(desc)
        return self._advance(iterable)

    def _advance(self, iterable: Iterable) -> Iterator:
        for item in iterable:
            yield item
            self.bar.update(1)

    # -- scalars and images ------------------------------------------------------------------------------------
    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Losses, LR, speed: to the bar's postfix, wandb, tensorboard and the step history."""
        if not self.enabled or not values:
            return
        values = dict(values)
        if self.device.type == "cuda":
            values["gpu_mem_gib"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        if "steps_per_s" in values:
            values["images_per_s"] = values["steps_per_s"] * self.cfg.data.batch_size
        self.record["steps"].append({"step": step, **values})
        if self.bar is not None:
            self.bar.set_postfix({k: f"{values[k]:.4g}" for k in (*LOSS_KEYS, "lr") if k in values}, refresh=False)
        if self._wandb is not None:
            self._wandb.log({f"train/{k}": v for k, v in values.items()}, step=step)
        if self._tensorboard is not None:
            for key, value in values.items():
                self._tensorboard.add_scalar(f"train/{key}", value, step)

    def explanations(
        self, step: int, images: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor, tag: str = "explanations"
    ) -> None:
        """images: [n, 3, H, W] in [0, 1]; maps: [n, H, W] in [0, 1]; overlays to wandb and tensorboard."""
        if not self.enabled or images.numel() == 0:
            return
        from tame.viz.overlay import blend

        overlays = np.stack([blend(image, map_) for image, map_ in zip(images, maps)])  # [n, H, W, 3] uint8
        if self._wandb is not None:
            import wandb

            captioned = [wandb.Image(o, caption=f"class {int(c)}") for o, c in zip(overlays, classes)]
            self._wandb.log({tag: captioned}, step=step)
        if self._tensorboard is not None:
            self._tensorboard.add_images(tag, overlays, step, dataformats="NHWC")

    # -- per epoch ---------------------------------------------------------------------------------------------
    def epoch_end(self, epoch: int, step: int, values: dict[str, float]) -> None:
        """Append the epoch's summary to ``train_record.json`` and redraw ``loss_curve.png``."""
        if not self.enabled:
            return
        self.record["epochs"].append({"epoch": epoch, "step": step, **values})
        self.record["config"] = asdict(self.cfg)
        write_text_atomic(self.output_dir / RECORD_FILE, json.dumps(self.record, indent=1))
        history = self.record["steps"]
        if history:
            from tame.viz.curves import plot_loss_curves

            keys = [k for k in (*LOSS_KEYS, "lr") if k in history[-1]]
            plot_loss_curves(
                [h["step"] for h in history],
                {k: [h.get(k) for h in history] for k in keys},
                self.output_dir / CURVE_FILE,
                title=f"{self.cfg.model.name} {self.cfg.model.version}",
            )
        if self._tensorboard is not None:
            self._tensorboard.flush()

    # -- validation (tame.engine.validation) --------------------------------------------------------------------
    def validation(self, step: int, epoch: int | None, values: dict[str, float]) -> None:
        """One validation's numbers: ``val/...`` to wandb and tensorboard, and into ``train_record.json`` at once."""
        if not self.enabled:
            return
        self.record["val"].append({"step": step, "epoch": epoch, **values})
        write_text_atomic(self.output_dir / RECORD_FILE, json.dumps(self.record, indent=1))
        if self._wandb is not None:
            self._wandb.log({f"val/{k}": v for k, v in values.items()}, step=step)
        if self._tensorboard is not None:
            for key, value in values.items():
                self._tensorboard.add_scalar(f"val/{key}", value, step)
            self._tensorboard.flush()

    def best(self, entry: dict | None) -> None:
        """The best epoch so far (``None``: none yet): the record's ``best`` and the wandb run's summary."""
        if not self.enabled:
            return
        self.record["best"] = entry
        if self._wandb is not None and entry is not None:
            self._wandb.summary.update({f"best/{k}": v for k, v in entry.items() if isinstance(v, (int, float))})

    def close(self) -> None:
        if self.enabled and "run" in self.record:
            self._mark_ended()
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def _mark_ended(self) -> None:
        """``finished`` when the last epoch is recorded, ``stopped`` otherwise (an error, an interrupt)."""
        epochs = self.record["epochs"]
        finished = bool(epochs) and epochs[-1]["epoch"] >= self.cfg.train.epochs
        self.record["run"].update(state="finished" if finished else "stopped", until=time.time())
        try:
            write_text_atomic(self.output_dir / RECORD_FILE, json.dumps(self.record, indent=1))
        except OSError as err:  # a full disk must not hide the error that stopped the run
            logger.warning("cannot update %s: %s", RECORD_FILE, err)


def _start_wandb(cfg: Config, output_dir: Path):
    """A wandb run that a resumed training continues (its id is kept in the output folder).

    A wandb that cannot start (``online`` without a login or a network, a bad ``WANDB_MODE``) falls back to
    ``offline`` with a warning, then to no wandb at all: logging never stops a run.
    """
    import wandb

    id_file = output_dir / "wandb_run_id.txt"
    run_id = id_file.read_text().strip() if id_file.is_file() else uuid.uuid4().hex[:12]
    write_text_atomic(id_file, run_id)
    name = cfg.log.run_name or output_dir.name
    kwargs = dict(
        project=cfg.log.project,
        name=name,
        id=run_id,
        resume="allow",
        dir=str(output_dir),
        config=asdict(cfg),
        tags=[cfg.model.name, cfg.model.version],
    )
    try:
        return wandb.init(mode=cfg.log.wandb, **kwargs)
    except Exception as err:  # wandb's UsageError, CommError, pydantic's ValidationError for WANDB_MODE, ...
        reason = _first_line(err)
    env_mode = os.environ.get("WANDB_MODE")
    logger.warning(
        "wandb could not start in %s mode (%s); logging offline instead%s (upload later: wandb sync %s)",
        env_mode or cfg.log.wandb,
        reason,
        f", ignoring WANDB_MODE={env_mode}" if env_mode else "",
        output_dir / "wandb",
    )
    try:
        wandb.teardown()  # the failed run's service still holds its id ("run ID ... is in use")
        with _environment_without("WANDB_MODE"):
            return wandb.init(mode="offline", **kwargs)
    except Exception as err:
        logger.warning("wandb could not start offline either (%s); training without wandb", _first_line(err))
        return None


def _first_line(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f"{type(err).__name__}: {' '.join(lines[:3])[:240]}" if lines else type(err).__name__


@contextmanager
def _environment_without(name: str) -> Iterator[None]:
    saved = os.environ.pop(name, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[name] = saved
