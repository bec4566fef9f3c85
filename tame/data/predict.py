"""The shards of a relabelled list: each rank writes ``OUT.rank<r>`` (``index label`` lines), rank 0 merges them in
list order into ``OUT`` and removes them. The predicting itself, across processes, is
:func:`tame.evaluation.predict.predict_list` (``tame datalist predict``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tame.data.lists import ListEntry, write_list
from tame.errors import TameError
from tame.io import atomic_path


def shard_path(output: str | os.PathLike, rank: int) -> Path:
    return Path(f"{output}.rank{rank}")


def write_shard(output: str | os.PathLike, rank: int, indices: np.ndarray, predictions: np.ndarray) -> None:
    with atomic_path(shard_path(output, rank)) as tmp:
        np.savetxt(tmp, np.stack([indices, predictions], axis=1), fmt="%d")


def merge_shards(output: str | os.PathLike, entries: list[ListEntry], world_size: int) -> int:
    """Write ``output`` from the ranks' shards in list order, remove the shards; returns how many labels changed."""
    predicted = np.full(len(entries), -1, dtype=np.int64)
    for rank in range(world_size):
        path = shard_path(output, rank)
        if not path.is_file():
            raise TameError(f"{path}: the predictions of rank {rank} are missing (did that process fail?)")
        rows = np.loadtxt(path, dtype=np.int64, ndmin=2)
        predicted[rows[:, 0]] = rows[:, 1]
    if (predicted < 0).any():
        missing = int(np.flatnonzero(predicted < 0)[0])
        raise TameError(f"no prediction for line {entries[missing].line} ({entries[missing].path}); run predict again")
    write_list(output, [(entry.path, int(label)) for entry, label in zip(entries, predicted)])
    for rank in range(world_size):
        shard_path(output, rank).unlink()
    return int(sum(entry.label != label for entry, label in zip(entries, predicted)))
