"""``build_loader``: a list file -> a sharded loader on the chosen backend (DALI or PIL), validated first.

``data.backend``: ``dali`` (fails if DALI is missing), ``torch`` (PIL fallback), or ``auto`` (DALI if it imports and
either CUDA is available or its CPU-only pipeline runs here, else torch).
``data.validate``: ``none``, ``cheap`` (format, labels, path inside the root, file exists and is not empty) or
``decode`` (also decodes every image). Every rank validates the whole list, so all ranks fail alike.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from tame.config import DataConfig
from tame.config.choices import Backend, check_choice
from tame.data.check import validate_list
from tame.data.lists import first_problem_error, read_list
from tame.data.sharding import Loader
from tame.errors import TameError

if TYPE_CHECKING:
    from tame.distributed import Dist  # only its rank, world_size and device are read


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
    check_choice(backend, Backend, "config key data.backend")
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
    check_resolved(data_cfg)
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
        resize=data_cfg.resize,
        crop=data_cfg.crop,
        workers=data_cfg.workers,
        interpolation=data_cfg.interpolation,
    )


def check_resolved(data_cfg: DataConfig) -> None:
    """The loader takes the sizes and interpolation as numbers: auto (None) values are the model's to fill
    (``tame.models.registry.build_classifier``), and the data layer knows no model and no default."""
    auto = [f"data.{key}" for key in ("resize", "crop", "interpolation") if getattr(data_cfg, key) is None]
    if auto:
        raise TameError(
            f"{', '.join(auto)}: auto, and the loader knows no model; resolve the config from the model first "
            "(tame.models.registry.build_classifier) or set a value"
        )
