"""A training run's full state in checkpoints: written by rank 0, restored by every rank (``train.resume``).

Rank 0 decides what to resume from (``auto``: the newest checkpoint that loads, skipping corrupt ones with a
warning; ``none``; or a path), checks that it fits this run and reports changed settings; every rank then takes
that decision, so all ranks restore the same step. File naming, atomic writes and loading: ``tame.engine.checkpoint``.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tame import distributed
from tame.config import Config, expand_path
from tame.distributed import Dist
from tame.engine.checkpoint import (
    checkpoint_files,
    checkpoint_path,
    load_checkpoint,
    newest_good_checkpoint,
    remove_temporaries,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from tame.engine.resumed_settings import check_resumed_settings
from tame.errors import TameError

if TYPE_CHECKING:
    from tame.engine.train import TrainingSetup

logger = logging.getLogger(__name__)


class Checkpoints:
    """Writes (rank 0) and restores (every rank) the full training state of a run."""

    def __init__(self, cfg: Config, dist: Dist, output_dir: Path, setup: TrainingSetup, optimizer, scheduler) -> None:
        self.cfg, self.dist, self.output_dir, self.setup = cfg, dist, output_dir, setup
        self.optimizer, self.scheduler = optimizer, scheduler
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
        """The one-line error for a run stopped by ``reason`` (a non-finite loss), naming the last good checkpoint."""
        return TameError(
            f"{reason}: training stopped; the last good checkpoint is {self.last_written or 'none (none written yet)'}"
            " (lower train.max_lr, or try train.amp=bf16/off, then run again to resume)"
        )

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
            path = expand_path(mode, "train.resume")
            if not path.is_file():
                raise TameError(f"config key train.resume: checkpoint {path} not found (auto, none or a path)")
            state = load_checkpoint(path)
        logger.info("resuming from %s (step %s)", path, state["step"])
        return path, state

    def _check(self, path: Path, state: dict) -> None:
        """Refuse a checkpoint whose batches would not line up; report settings that changed (rank 0)."""
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
        schedule = {k: getattr(self.scheduler, k) for k in _SCHEDULE_ATTRIBUTES if hasattr(self.scheduler, k)}
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._keep_current_schedule(groups, schedule)
        if state["scaler"]:
            self.setup.scaler.load_state_dict(state["scaler"])
        if int(state.get("world_size", 1)) == self.dist.world_size:
            set_rng_state({k: v[self.dist.rank] for k, v in state["rng"].items()}, self.dist.device)

    def _keep_current_schedule(self, groups: list[dict], schedule: dict) -> None:
        """The checkpoint's optimizer and scheduler states carry the old run's LR schedule and momentum; a resumed
        run with changed ``train.max_lr``, ``epochs``, momentum or weight decay keeps this config's values and
        goes on from this step on the schedule they define (unchanged settings: the checkpoint's state as saved)."""
        changed = [
            g for g, fresh in zip(self.optimizer.param_groups, groups) if any(g[k] != v for k, v in fresh.items())
        ]
        for group, fresh in zip(self.optimizer.param_groups, groups):
            group.update(fresh)
        for key, value in schedule.items():
            if getattr(self.scheduler, key) != value:
                setattr(self.scheduler, key, value)
                changed.append(key)
        if changed:  # this step's LR (and cycled momentum) from the current schedule
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # get_lr outside step(): what we mean here
                for group, lr in zip(self.optimizer.param_groups, self.scheduler.get_lr()):
                    group["lr"] = lr
            self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]


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
# the schedule's own settings (OneCycleLR's; LambdaLR, epoch_decay, has only base_lrs: its lambda is not saved)
_SCHEDULE_ATTRIBUTES = ("total_steps", "_schedule_phases", "cycle_momentum", "base_lrs")


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
