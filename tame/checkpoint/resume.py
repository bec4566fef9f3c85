"""A training run's full state in checkpoints: written by rank 0, restored by every rank (``train.resume``).

Rank 0 decides what to resume from (``auto``: the newest checkpoint that loads, skipping corrupt ones with a
warning; ``none``; or a path), checks that it fits this run and reports changed settings; every rank then takes
that decision, so all ranks restore the same step. File format and loading: :mod:`tame.checkpoint.format`; names:
:mod:`tame.checkpoint.naming`.

What a resumed run may change, and how a change takes effect. The one-cycle LR schedule (``tame.engine.optim``) is
laid out over ``train.epochs * steps_per_epoch`` steps when a run starts, and the sampler's position is counted in
batches, so two kinds of settings differ on resume:

- refused, with one line naming the checkpoint's value and this run's: ``train.epochs`` (a longer run would train
  the rest of the old schedule and then fail; a shorter one would end at once or past its own end) and
  ``data.batch_size`` (the position in the epoch would point at other images). A changed number of steps per
  epoch (data list, batch size, ``train.max_steps_per_epoch``) is refused by :meth:`Checkpoints._check`, and so
  is another ``train.schedule``;
- adopted from the resumed step on, with a warning that says so: ``train.max_lr`` (the schedule continues at the
  same step with the new peak: what ``stopped`` advises after a non-finite loss), ``train.weight_decay``, the bias
  settings (``bias_lr_factor``, ``bias_weight_decay``), ``train.lr_decay``, ``train.lr_decay_epochs`` and the
  momentum settings. The checkpoint's optimiser state would otherwise bring back the old values silently:
  :meth:`Checkpoints._restore` puts this config's values back after loading it, and builds the schedule anew at the
  resumed step (the scheduler's ``last_epoch``, torch's way to resume one) from this config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch

from tame import distributed
from tame.checkpoint.format import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from tame.checkpoint.naming import checkpoint_files, checkpoint_path, remove_temporaries
from tame.config import Config, expand_path
from tame.distributed import Dist
from tame.errors import TameError

logger = logging.getLogger(__name__)
REFUSED = (("train", "epochs"), ("data", "batch_size"), ("train", "schedule"))
ADOPTED = ("max_lr", "weight_decay", "momentum", "cycle_momentum", "base_momentum", "max_momentum", "nesterov")
ADOPTED += ("bias_lr_factor", "bias_weight_decay", "lr_decay", "lr_decay_epochs")


class TrainingState(Protocol):
    """What :class:`Checkpoints` saves and restores of a run (``tame.engine.train.TrainingSetup`` is one)."""

    model: Any  # a TameModel: ``attention``, ``attention_meta()``, ``load_attention(path)``
    scaler: torch.amp.GradScaler
    steps_per_epoch: int


ScheduleAt = Callable[..., Any]  # schedule_at(optimizer, step=S) -> this config's LR schedule at step S


class Checkpoints:
    """Writes (rank 0) and restores (every rank) the full training state of a run."""

    def __init__(
        self, cfg: Config, dist: Dist, output_dir: Path, setup: TrainingState, optimizer, schedule_at: ScheduleAt
    ) -> None:
        """``schedule_at(optimizer, step=S)``: this config's LR schedule over ``optimizer`` at ``step`` (0: a new run;
        it sets the schedule's values in the optimizer's groups). :attr:`scheduler` is the one to step: the new
        run's, or after :meth:`resume` the one rebuilt at the resumed step."""
        self.cfg, self.dist, self.output_dir, self.setup = cfg, dist, output_dir, setup
        self.optimizer, self.schedule_at = optimizer, schedule_at
        self.scheduler = schedule_at(optimizer, step=0)
        self.last_written: Path | None = None  # the newest checkpoint on disk: this run's, or the one it resumed

    def save(self, step: int) -> None:
        """An epoch checkpoint at the end of an epoch, a step checkpoint otherwise (all ranks call this)."""
        path = checkpoint_path(self.output_dir, step, self.setup.steps_per_epoch)
        rng = distributed.gather_objects(self.dist, rng_state(self.dist.device))  # every rank's, in rank order
        if self.dist.is_main:
            try:
                save_checkpoint(self._state(step, rng), path, keep=self.cfg.train.keep_checkpoints)
            except OSError as err:  # a full disk, a folder made read-only: the older checkpoints are untouched
                raise TameError(
                    f"cannot write {path}: {err.strerror or err}; the last good checkpoint is "
                    f"{self.last_written or 'none (none written yet)'} (free space or fix the folder, then run "
                    "again to resume)"
                ) from None
        self.last_written = path

    def _state(self, step: int, rng: list[dict[str, torch.Tensor]]) -> dict:
        setup = self.setup
        return {
            "attention": {k: v.detach().cpu() for k, v in setup.model.attention.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": setup.scaler.state_dict(),
            "epoch": step // setup.steps_per_epoch,
            "step": step,
            "steps_per_epoch": setup.steps_per_epoch,
            "world_size": self.dist.world_size,
            "rng": {key: torch.stack([r[key] for r in rng]) for key in rng[0]},  # [world, n] uint8
            "config": asdict(self.cfg),
            "meta": setup.model.attention_meta(),
        }

    def stopped(self, reason: Exception) -> TameError:
        """The one-line error for a run stopped by ``reason``, naming the last good checkpoint: a non-finite loss,
        an out-of-memory step (its ``advice``), or an ``OSError`` (a full disk while the loss curve, the record or
        best.pt was written: named after the file)."""
        advice = getattr(reason, "advice", "lower train.max_lr, or try train.amp=bf16/off, then run again to resume")
        if isinstance(reason, OSError):
            where = f": {reason.filename}" if reason.filename else ""
            reason, advice = f"{reason.strerror or reason}{where}", "free space or fix the folder, then run again"
        last = self.last_written or "none (none written yet)"
        return TameError(f"{reason}: training stopped; the last good checkpoint is {last} ({advice})")

    def resume(self) -> int:
        """Load the checkpoint that ``train.resume`` names (``auto``: the newest good one); returns its step."""
        found, decision = None, None
        if self.dist.is_main:
            remove_temporaries(self.output_dir)  # left by a run killed while it wrote a checkpoint
            try:
                found = self._choose()
                if found:
                    self._check(*found)
                decision = found[0] if found else None
            except TameError as err:
                decision = err
        decision = distributed.broadcast_object(self.dist, decision)  # every rank takes rank 0's decision
        if isinstance(decision, TameError):
            raise decision
        if decision is None:
            return 0
        path, state = found or (decision, load_checkpoint(decision))
        self._restore(path, state)
        self.last_written = path
        return int(state["step"])

    def _choose(self) -> tuple[Path, dict] | None:
        mode = self.cfg.train.resume
        if mode == "none":
            if checkpoint_files(self.output_dir, self.setup.steps_per_epoch):
                raise TameError(
                    f"output_dir {self.output_dir} holds checkpoints of an earlier run; set "
                    "train.resume=auto to continue it, or choose another output_dir"
                )
            return None
        if mode == "auto":
            found = newest_good_checkpoint(self.output_dir, self.setup.steps_per_epoch, logger.warning)
            if found is None:
                return None
            path, state = found
        else:
            path = resume_file(mode)
            state = load_checkpoint(path)
        logger.info("resuming from %s (step %s)", path, state["step"])
        return path, state

    def _check(self, path: Path, state: dict) -> None:
        """Refuse a checkpoint of another model (named first: it explains other step counts too) or whose batches
        would not line up; report settings that changed (rank 0)."""
        meta, attention = dict(state.get("meta") or {}), state["attention"]
        self.setup.model.check_fits(path, meta, attention if isinstance(attention, dict) else {})
        if int(state["steps_per_epoch"]) != self.setup.steps_per_epoch:
            raise TameError(
                f"checkpoint {path} was written with {state['steps_per_epoch']} steps per epoch, this "
                f"run has {self.setup.steps_per_epoch} (data list or batch size changed); resuming would "
                "repeat or skip batches: set train.resume=none and a new output_dir"
            )
        check_resumed_settings(path, dict(state.get("config") or {}), self.cfg, int(state["step"]))
        changed = _changed_settings(dict(state.get("config") or {}), asdict(self.cfg))
        if changed:
            logger.warning("resuming %s with changed settings: %s", path.name, ", ".join(changed))
        if int(state.get("world_size", 1)) != self.dist.world_size:
            logger.warning(
                "checkpoint %s was written by %s processes, this run has %s: random states start afresh",
                path.name,
                state.get("world_size"),
                self.dist.world_size,
            )

    def _restore(self, path: Path, state: dict) -> None:
        self.setup.model.load_attention(path)  # checks that the AM fits: model layers, version, shapes
        keys = _GROUP_KEYS + (() if self.cfg.train.cycle_momentum else ("momentum",))
        groups = [{k: g[k] for k in keys if k in g} for g in self.optimizer.param_groups]  # this config's values
        self.optimizer.load_state_dict(state["optimizer"])  # momentum buffers, and the old run's schedule values
        for group, fresh in zip(self.optimizer.param_groups, groups):
            group.update(fresh)
        # the schedule of this config, at the resumed step: its LR (and cycled momentum) of that step in the groups
        self.scheduler = self.schedule_at(self.optimizer, step=int(state["step"]))
        if state["scaler"]:
            self.setup.scaler.load_state_dict(state["scaler"])
        if int(state.get("world_size", 1)) == self.dist.world_size:
            set_rng_state({k: v[self.dist.rank] for k, v in state["rng"].items()}, self.dist.device)


def newest_good_checkpoint(directory: Path, steps_per_epoch: int, warn) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; each corrupt newer one is reported through ``warn`` and skipped."""
    for _, path in checkpoint_files(directory, steps_per_epoch):
        try:
            return path, load_checkpoint(path)
        except TameError as err:
            warn(f"skipping checkpoint {path.name}: {err}; trying the previous one")
    return None


def check_resumed_settings(path: Path, saved: dict, cfg: Config, step: int) -> None:
    """Refuse a change of :data:`REFUSED` keys; announce a change of :data:`ADOPTED` ones (rank 0)."""
    for section, key in REFUSED:
        old, new = saved.get(section, {}).get(key), getattr(getattr(cfg, section), key)
        if old is not None and old != new:
            raise TameError(
                f"checkpoint {path} belongs to a run with {section}.{key}={old}, this run has {section}.{key}={new}: "
                f"{_WHY[key]}; keep {section}.{key}={old} to continue it, or start a new run in another output_dir"
            )
    changed = changed_adopted(saved, cfg)
    if changed:
        logger.warning(
            "%s changed: in effect from step %d on (the LR schedule goes on from that step with the new values)",
            ", ".join(f"train.{key}" for key in changed),
            step + 1,
        )


_WHY = {
    "epochs": "the one-cycle LR schedule is laid out over the run's length when it starts and cannot be stretched "
    "or cut mid-run",
    "batch_size": "the position within the epoch is counted in batches, so resuming would repeat or skip images",
    "schedule": "the checkpoint's optimizer state belongs to the other schedule",
}


def changed_adopted(saved: dict, cfg: Config) -> list[str]:
    train = saved.get("train", {})
    return [key for key in ADOPTED if key in train and train[key] != getattr(cfg.train, key)]


_GROUP_KEYS = (
    "initial_lr",
    "max_lr",
    "min_lr",
    "base_momentum",
    "max_momentum",
    "weight_decay",
    "nesterov",
    "lr_factor",
)


def resume_file(mode: str) -> Path:
    """The checkpoint ``train.resume=PATH`` names (not ``auto`` / ``none``); a missing file is one line."""
    path = expand_path(mode, "train.resume")
    if not path.is_file():
        raise TameError(f"config key train.resume: checkpoint {path} not found (auto, none or a path)")
    return path


def _changed_settings(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for settings that differ (logging, output folder and resume mode are ignored)."""
    out = []
    for key, value in current.items():
        name = f"{prefix}{key}"
        if name in ("log", "output_dir", "train.resume") or key not in saved:
            continue
        if isinstance(value, dict) and isinstance(saved[key], dict):
            out += _changed_settings(saved[key], value, f"{name}.")
        elif saved[key] != value:
            out.append(f"{name}: {saved[key]!r} -> {value!r}")
    return out
