"""Which samples each rank reads in which order, and the :class:`Loader` base that both backends share.

Train (``train=True``): the epoch's order is a permutation seeded by ``(seed, epoch)``, the same on every rank; only
full global batches are kept (``N // (W * b)`` per epoch, the incomplete rest is dropped). Global batch ``k`` is
``order[k*W*b : (k+1)*W*b]`` and rank ``r`` reads its ``r``-th slice of ``b``, so the ranks' batches gathered in rank
order are exactly the batch one process with ``W * b`` would read. Augmentation (crop position, flip) is drawn from
the same ``(seed, epoch)`` generator per *sample index*, so a resumed epoch (``skip_batches``) sees exactly the crops
an uninterrupted one would.

Eval (``train=False``): list order; the list is padded (wrapping around) to a multiple of ``W`` and rank ``r`` reads
positions ``r, r + W, ...``: every sample exactly once over all ranks, every rank the same number of batches (the last
may be smaller). Padding samples carry label -1, which consumers drop.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tame.data.lists import ListEntry
from tame.errors import TameError


@dataclass(frozen=True)
class EpochPlan:
    """One rank's samples for one epoch.

    indices: [n] int64 sample indices into the list, in reading order (padding wraps around the list)
    padding: [n] bool, True for eval padding samples (label -1)
    augment: [n, 3] float32 (crop position x, crop position y, flip if < 0.5) in [0, 1); None for eval
    """

    indices: np.ndarray
    padding: np.ndarray
    augment: np.ndarray | None
    batch_size: int

    @property
    def num_batches(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)

    def batch(self, k: int) -> slice:
        return slice(k * self.batch_size, min((k + 1) * self.batch_size, len(self.indices)))


def num_batches(num_samples: int, *, train: bool, world_size: int, batch_size: int) -> int:
    """Batches per epoch on every rank."""
    if train:
        return num_samples // (world_size * batch_size)
    return math.ceil(math.ceil(num_samples / world_size) / batch_size)


def plan_epoch(
    num_samples: int, *, train: bool, rank: int, world_size: int, batch_size: int, seed: int, epoch: int
) -> EpochPlan:
    """The samples rank ``rank`` of ``world_size`` reads in epoch ``epoch`` (see the module docstring)."""
    if train:
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(num_samples)
        augment = rng.random((num_samples, 3), dtype=np.float32)
        used = num_batches(num_samples, train=True, world_size=world_size, batch_size=batch_size)
        indices = order[: used * world_size * batch_size].reshape(used, world_size, batch_size)[:, rank].ravel()
        return EpochPlan(indices, np.zeros(len(indices), dtype=bool), augment[indices], batch_size)
    per_rank = math.ceil(num_samples / world_size)
    positions = np.arange(rank, per_rank * world_size, world_size)
    return EpochPlan(positions % num_samples, positions >= num_samples, None, batch_size)


class Loader:
    """Batches ``(images [B, 3, crop, crop] float32 in [0, 1], labels [B] int64)`` on ``device``, sharded by rank.

    ``set_epoch(e, skip_batches=s)`` makes the next iteration yield batches ``s..len-1`` of epoch ``e``, exactly as
    an uninterrupted iteration of that epoch would; without it, iterating again repeats the current epoch.
    Subclasses implement :meth:`_iterate`.
    """

    backend: str

    def __init__(
        self,
        entries: Sequence[ListEntry],
        root: str | os.PathLike,
        *,
        list_file: str | os.PathLike,
        train: bool,
        device: torch.device,
        rank: int,
        world_size: int,
        batch_size: int,
        seed: int,
        resize: int,
        crop: int,
        workers: int,
    ) -> None:
        self.entries = list(entries)
        self.root = Path(root)
        self.list_file = Path(list_file)
        self.train = train
        self.device = torch.device(device)
        self.rank, self.world_size, self.batch_size, self.seed = rank, world_size, batch_size, seed
        self.resize, self.crop, self.workers = resize, crop, workers
        self.num_samples = len(self.entries)
        self.labels = torch.tensor([entry.label for entry in self.entries], dtype=torch.int64)
        self._num_batches = num_batches(self.num_samples, train=train, world_size=world_size, batch_size=batch_size)
        if self._num_batches == 0:
            raise TameError(
                f"{list_file}: {self.num_samples} samples are fewer than one global batch ({world_size} processes x "
                f"{batch_size}); use a smaller data.batch_size or a longer list"
            )
        self.epoch, self._skip = 0, 0

    def __len__(self) -> int:
        return self._num_batches

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        if not 0 <= skip_batches <= self._num_batches:
            raise ValueError(f"skip_batches={skip_batches} is outside 0..{self._num_batches}")
        self.epoch, self._skip = epoch, skip_batches

    def plan(self) -> EpochPlan:
        """This rank's samples for the current epoch (e.g. to know which list entry each yielded row is)."""
        return plan_epoch(
            self.num_samples,
            train=self.train,
            rank=self.rank,
            world_size=self.world_size,
            batch_size=self.batch_size,
            seed=self.seed,
            epoch=self.epoch,
        )

    def batch_labels(self, plan: EpochPlan, k: int) -> torch.Tensor:
        """Labels [B] of batch ``k`` on the device; -1 for padding."""
        rows = plan.batch(k)
        labels = self.labels[torch.from_numpy(plan.indices[rows])]
        labels[torch.from_numpy(plan.padding[rows])] = -1
        return labels.to(self.device, non_blocking=True)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        skip, self._skip = self._skip, 0
        if skip < self._num_batches:
            yield from self._iterate(self.plan(), skip)

    def _iterate(self, plan: EpochPlan, skip: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError
