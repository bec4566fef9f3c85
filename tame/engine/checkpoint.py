"""Training checkpoints: written atomically, loaded without executing code, the newest good one found on resume.

The files' names and how a folder's checkpoints are found live in :mod:`tame.checkpoints` (``epoch_{N}.pt`` at
epoch ends, ``step_{S}.pt`` within epochs); :func:`checkpoint_path` and :func:`checkpoint_files` are re-exported here.
Each file is a plain dict of tensors and numbers (``torch.load(weights_only=True)`` reads it): ``attention``,
``optimizer``, ``scheduler``, ``scaler``, ``epoch`` (epochs completed), ``step`` (optimiser steps completed),
``steps_per_epoch``, ``rng`` (every rank's torch CPU/CUDA generator states, stacked), ``config`` (resolved),
``meta`` (what the AM fits: model, layers, version).
"""

from __future__ import annotations

from pathlib import Path

import torch

from tame.checkpoints import checkpoint_files, checkpoint_path, is_temporary, step_checkpoints
from tame.errors import TameError
from tame.io import load_tensor_file, save_atomic
from tame.models.registry import check_finite

__all__ = [
    "CHECKPOINT_FORMAT",
    "REQUIRED_KEYS",
    "checkpoint_files",
    "checkpoint_path",
    "load_checkpoint",
    "newest_good_checkpoint",
    "remove_temporaries",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
]

CHECKPOINT_FORMAT = "tame-train/1"
REQUIRED_KEYS = ("attention", "optimizer", "scheduler", "scaler", "epoch", "step", "steps_per_epoch", "rng")


def remove_temporaries(directory: Path) -> None:
    """Delete the temporary files of checkpoint writes that never finished (their process was killed)."""
    if directory.is_dir():
        for path in directory.iterdir():
            if is_temporary(path.name):
                path.unlink(missing_ok=True)


def save_checkpoint(state: dict, path: Path, *, keep: int) -> None:
    """Write ``state`` to ``path`` atomically, then drop step files beyond the newest ``keep`` in its folder."""
    save_atomic({"format": CHECKPOINT_FORMAT, **state}, path)
    for _, old in step_checkpoints(path.parent)[:-keep]:
        old.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint, checked for the keys a resume needs and for NaN/Inf in the state it restores
    (TameError if corrupt, incomplete or non-finite)."""
    state = load_tensor_file(path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise TameError(f"{path}: not a tame training checkpoint (missing {', '.join(missing)})")
    resumed = {key: state[key] for key in ("attention", "optimizer", "scheduler", "scaler")}
    check_finite(resumed, str(path), "a run cannot resume from it; use an earlier checkpoint")
    return state


def newest_good_checkpoint(directory: Path, steps_per_epoch: int, warn) -> tuple[Path, dict] | None:
    """The newest checkpoint that loads; each corrupt newer one is reported through ``warn`` and skipped."""
    for _, path in checkpoint_files(directory, steps_per_epoch):
        try:
            return path, load_checkpoint(path)
        except TameError as err:
            warn(f"skipping checkpoint {path.name}: {err}; trying the previous one")
    return None


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's torch generator states (CPU, and the current CUDA device's) as uint8 tensors."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    # copies: a rank's row of the stacked [world, n] states is a view at an offset, on which torch.set_rng_state
    # crashes the process (SIGSEGV, torch 2.14)
    torch.set_rng_state(state["torch"].clone())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].clone(), device)
