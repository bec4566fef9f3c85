"""``build_loader``: a list file -> a sharded loader on the chosen backend (DALI or PIL), validated first.

``data.backend``: ``dali`` (fails if DALI is missing), ``torch`` (PIL fallback), or ``auto`` (DALI if it imports and
either CUDA is available or its CPU-only pipeline runs here, else torch).
``data.validate``: ``none``, ``cheap`` (format, labels, path inside the root, file exists and is not empty) or
``decode`` (also decodes every image). Every rank validates the whole list, so all ranks fail alike.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import torch

from tame.config import DataConfig
from tame.data.check import validate_list
from tame.data.lists import first_problem_error, read_list
from tame.data.sharding import Loader
from tame.errors import TameError

if TYPE_CHECKING:
    from tame.distributed import Dist  # only its rank, world_size and device are read

log = logging.getLogger(__name__)


def resolve_backend(backend: str, device: torch.device) -> str:
    """``dali`` or ``torch`` for the configured ``data.backend`` on ``device``."""
    from tame.data.dali import dali_available

    if backend == "torch":
        return "torch"
    if backend == "dali":
        if not dali_available(cpu_only=False):
            raise TameError(
                "data.backend=dali but NVIDIA DALI is not installed "
                "(pip install nvidia-dali-cuda120, or use data.backend=torch)"
            )
        return "dali"
    if backend != "auto":
        raise TameError(f"config key data.backend: {backend!r} is not one of dali, torch, auto")
    return "dali" if dali_available(cpu_only=device.type != "cuda") else "torch"


def per_rank_batch(global_batch: int, world_size: int, source: str = "config key data.batch_size") -> int:
    """The local (per-process) batch of a global batch split over ``world_size`` processes.

    The one home of the rule every entry point applies (train, lr-find, eval, compare, datalist predict): a global
    batch that does not split evenly is refused, never rounded. ``source``: what the message names.
    """
    if global_batch < 1 or global_batch % world_size:
        raise TameError(
            f"{source}: the global batch {global_batch} does not split evenly over {world_size} processes; "
            f"use a positive multiple of {world_size}"
        )
    return global_batch // world_size


def build_loader(
    data_cfg: DataConfig,
    list_file: str | os.PathLike,
    root: str | os.PathLike,
    *,
    train: bool,
    dist: Dist,
    seed: int = 0,
    global_batch_size: int | None = None,
    num_classes: int | None = None,
    max_samples: int | None = None,
) -> Loader:
    """A loader over ``list_file`` (paths relative to ``root``) for this process of ``dist`` (its rank, world size
    and device: ``Dist.local(device)`` for one process); see :class:`Loader` for the contract.

    ``global_batch_size``: the images of one step over all processes (default ``data_cfg.batch_size``), each process
    reading its :func:`per_rank_batch`; ``num_classes`` bounds the labels; ``max_samples`` keeps only the first
    entries of the list (smoke runs).
    """
    rank, world_size, device = dist.rank, dist.world_size, dist.device
    if not 0 <= rank < world_size:
        raise TameError(f"rank {rank} is outside 0..{world_size - 1}")
    if seed < 0:
        raise TameError(f"config key train.seed: must not be negative, got {seed}")
    if global_batch_size is None:
        batch_size = per_rank_batch(data_cfg.batch_size, world_size)
    else:
        batch_size = per_rank_batch(global_batch_size, world_size, "batch size")
    resize, crop = _sizes(data_cfg)
    entries = read_list(list_file, root, num_classes)
    if max_samples is not None:
        entries = entries[:max_samples]
    if data_cfg.validate != "none":
        report = validate_list(
            entries, root, decode=data_cfg.validate == "decode", workers=max(8, data_cfg.workers), progress=rank == 0
        )
        if not report.ok:
            raise TameError(first_problem_error(list_file, report.problems, root))
    backend = resolve_backend(data_cfg.backend, device)
    if backend == "dali":
        from tame.data.dali import DaliLoader as loader_class
    else:
        from tame.data.torch_loader import TorchLoader as loader_class
    return loader_class(
        entries,
        root,
        list_file=list_file,
        train=train,
        device=device,
        rank=rank,
        world_size=world_size,
        batch_size=batch_size,
        seed=seed,
        resize=resize,
        crop=crop,
        workers=data_cfg.workers,
        interpolation=data_cfg.interpolation or "bilinear",
    )


def _sizes(data_cfg: DataConfig) -> tuple[int, int]:
    """(resize, crop); auto values that no model resolved (``tame.models.registry.resolve_config``) fall back
    to ImageNet's 256 / 224 with a warning."""
    resize, crop = data_cfg.resize, data_cfg.crop
    if resize is None or crop is None:
        resize, crop = resize or 256, crop or 224
        log.warning("data.resize/crop are auto and no model resolved them: using resize %d, crop %d", resize, crop)
    return resize, crop
