"""How training checkpoints are named and found: the one place that knows ``epoch_{N}.pt`` and ``step_{S}.pt``.

- ``epoch_{N}.pt`` after epoch N (1-based; all kept; ``tame eval --checkpoint DIR`` reads them);
- ``step_{S}.pt`` every ``train.checkpoint_every`` optimiser steps (the newest ``train.keep_checkpoints`` kept);
- ``.epoch_{N}.pt.tmp{pid}`` / ``.step_{S}.pt.tmp{pid}``: :func:`tame.io.save_atomic`'s file while it writes.

Only names and folders here (no torch): :mod:`tame.checkpoint.format` writes and reads the files,
:mod:`tame.checkpoint.resume` resumes from them, evaluation and the demo find them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tame.errors import TameError

BEST_FILE = "best.pt"  # the best validated epoch's checkpoint (a hard link): matches no epoch/step name
_NAME = re.compile(r"^(epoch|step)_(\d+)\.pt$")
_TEMPORARY = re.compile(r"^\.(epoch|step)_\d+\.pt\.tmp\d+$")


def epoch_file(directory: str | os.PathLike, epoch: int) -> Path:
    """``directory/epoch_{epoch}.pt``: the checkpoint written at the end of epoch ``epoch`` (1-based)."""
    return Path(directory) / f"epoch_{epoch}.pt"


def step_file(directory: str | os.PathLike, step: int) -> Path:
    """``directory/step_{step}.pt``: the checkpoint written after ``step`` optimiser steps, inside an epoch."""
    return Path(directory) / f"step_{step}.pt"


def parse_name(name: str) -> tuple[str, int] | None:
    """``("epoch", N)`` or ``("step", S)`` for a checkpoint file name, None for any other name."""
    match = _NAME.match(name)
    return (match.group(1), int(match.group(2))) if match else None


def is_temporary(name: str) -> bool:
    """Whether ``name`` is the temporary file of a checkpoint write (left behind if its process was killed)."""
    return _TEMPORARY.match(name) is not None


def remove_temporaries(directory: Path) -> None:
    """Delete the temporary files of checkpoint writes that never finished (their process was killed)."""
    if directory.is_dir():
        for path in directory.iterdir():
            if is_temporary(path.name):
                path.unlink(missing_ok=True)


def checkpoint_path(directory: Path, step: int, steps_per_epoch: int) -> Path:
    """``epoch_{N}.pt`` when ``step`` ends epoch N, ``step_{S}.pt`` otherwise."""
    if step % steps_per_epoch == 0:
        return epoch_file(directory, step // steps_per_epoch)
    return step_file(directory, step)


def _numbered(directory: Path, kind: str) -> list[tuple[int, Path]]:
    """(number, path) of the ``kind`` (epoch|step) files of ``directory``, ascending; none for a missing folder."""
    if not directory.is_dir():
        return []
    found = ((parse_name(path.name), path) for path in directory.iterdir())
    return sorted((parsed[1], path) for parsed, path in found if parsed is not None and parsed[0] == kind)


def epoch_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(epoch, path) of every ``epoch_N.pt`` in ``directory``, in epoch order."""
    return _numbered(Path(directory), "epoch")


def step_checkpoints(directory: str | os.PathLike) -> list[tuple[int, Path]]:
    """(step, path) of every ``step_S.pt`` in ``directory``, oldest first."""
    return _numbered(Path(directory), "step")


def checkpoint_files(directory: Path, steps_per_epoch: int) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in ``directory``, newest first (an epoch file wins a tie)."""
    found = [(epoch * steps_per_epoch, True, path) for epoch, path in epoch_checkpoints(directory)]
    found += [(step, False, path) for step, path in step_checkpoints(directory)]
    return [(step, path) for step, _, path in sorted(found, reverse=True)]


def checkpoints_to_evaluate(path: str | os.PathLike) -> list[tuple[str, Path]]:
    """(epoch label, file): one file, or every ``epoch_N.pt`` of a folder in epoch order."""
    path = Path(path)
    if path.is_dir():
        found = epoch_checkpoints(path)
        if not found:
            raise TameError(f"checkpoint folder {path} holds no epoch_N.pt files (train writes them at epoch ends)")
        return [(str(epoch), file) for epoch, file in found]
    if not path.is_file():
        raise TameError(f"checkpoint not found: {path}")
    match = _NAME.match(path.name)
    return [(match.group(2) if match and match.group(1) == "epoch" else path.stem, path)]


def newest_epoch_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file itself, or the newest ``epoch_N.pt`` of a training folder."""
    return checkpoints_to_evaluate(path)[-1][1]
