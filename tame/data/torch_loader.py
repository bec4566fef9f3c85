"""The fallback loader: PIL decoding + the shared resize/crop geometry in ``DataLoader`` worker processes.

Same contract, sharding and transforms as the DALI pipeline (see :mod:`tame.data.sharding` and
:mod:`tame.data.images`); used where DALI is not installed or with ``data.backend: torch``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from tame.data.images import DecodeError, load_rgb, resize_and_crop, to_uint8_tensor
from tame.data.lists import ListEntry
from tame.data.sharding import EpochPlan, Loader
from tame.errors import TameError

# one sample request: (sample index, crop position x, crop position y, flip)
Request = tuple[int, float, float, bool]


class _Images(Dataset):
    """Decodes and transforms one image per :data:`Request`; an undecodable file comes back as an error message."""

    def __init__(
        self, entries: list[ListEntry], root: Path, list_file: Path, resize: int, crop: int, interpolation: str
    ) -> None:
        self.entries, self.root, self.list_file = entries, root, list_file
        self.resize, self.crop, self.interpolation = resize, crop, interpolation

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, request: Request) -> tuple[torch.Tensor, str]:
        index, pos_x, pos_y, flip = request
        entry = self.entries[index]
        try:
            image = load_rgb(self.root / entry.path)
        except DecodeError as err:
            placeholder = torch.zeros(3, self.crop, self.crop, dtype=torch.uint8)
            return placeholder, f"{self.list_file}:{entry.line}: {entry.path}: {err}"
        image = resize_and_crop(image, self.resize, self.crop, pos_x, pos_y, flip, self.interpolation)
        return to_uint8_tensor(image), ""  # [3, crop, crop] uint8


class TorchLoader(Loader):
    """PIL + ``DataLoader`` backend (``workers`` processes; 0 decodes in the main process)."""

    backend = "torch"

    def __init__(self, *args, interpolation: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.interpolation = interpolation  # bilinear | bicubic (antialiased)

    def _requests(self, plan: EpochPlan, k: int) -> list[Request]:
        rows = plan.batch(k)
        indices = plan.indices[rows].tolist()
        if plan.augment is None:
            return [(index, 0.5, 0.5, False) for index in indices]
        augment = plan.augment[rows]
        return [(index, float(x), float(y), bool(f < 0.5)) for index, (x, y, f) in zip(indices, augment)]

    def _iterate(self, plan: EpochPlan, skip: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        batches = [self._requests(plan, k) for k in range(skip, plan.num_batches)]
        dataset = _Images(self.entries, self.root, self.list_file, self.resize, self.crop, self.interpolation)
        loader = DataLoader(
            dataset, batch_sampler=batches, num_workers=self.workers, pin_memory=self.device.type == "cuda"
        )
        for k, (images, errors) in enumerate(loader, start=skip):
            failed = [error for error in errors if error]
            if failed:
                raise TameError(
                    f"{failed[0]} (run `tame datalist check {self.list_file} --root {self.root} --decode` "
                    "to find every bad image)"
                )
            images = images.to(self.device, non_blocking=True).float().div_(255)  # [B, 3, crop, crop] in [0, 1]
            yield images, self.batch_labels(plan, k)
