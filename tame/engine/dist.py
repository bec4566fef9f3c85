"""The one place that knows how this process was launched: single process, torchrun, or SLURM ``srun``.

``resolve_launch(env)`` reads rank / world size / local rank from torchrun's variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``) or, without them, from SLURM's (``SLURM_PROCID``,
``SLURM_NTASKS``, ``SLURM_LOCALID``, with the rendezvous on the first node of ``SLURM_JOB_NODELIST``);
neither means one process. ``setup(device)`` then starts the process group (nccl on GPU, gloo on CPU)
and returns a :class:`Dist` that the engine passes around; only rank 0 logs and writes files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist

from tame.errors import TameError

DEFAULT_PORT = 29500
# newer torch deprecates all_gather_into_tensor in favour of all_gather_single
_all_gather_single = getattr(torch_dist, "all_gather_single", None) or torch_dist.all_gather_into_tensor


@dataclass(frozen=True)
class Launch:
    """How many processes there are and which one this is (before any process group exists)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: str | None = None  # set only where we must provide it (SLURM without torchrun)
    master_port: int | None = None
    source: str = "single"  # single | torchrun | slurm


@dataclass(frozen=True)
class Dist:
    """The resolved launch plus the device this process works on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _int(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise TameError(f"environment variable {key}={env[key]!r} is not an integer") from None


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[003-006,9],cpu1`` -> ``gpu003``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?([^,]*)", nodelist.strip())
    if not match:
        raise TameError(f"cannot read SLURM_JOB_NODELIST={nodelist!r}")
    prefix, ranges, suffix = match.groups()
    if not ranges:
        return prefix + suffix
    first = ranges.split(",")[0].split("-")[0]
    return f"{prefix}{first}{suffix}"


def resolve_launch(env: Mapping[str, str] | None = None) -> Launch:
    """Rank and world size from torchrun (preferred) or SLURM variables; a single process otherwise."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        world = _int(env, "WORLD_SIZE")
        local_world = _int(env, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in env else world
        return Launch(
            rank=_int(env, "RANK"),
            world_size=world,
            local_rank=_int(env, "LOCAL_RANK"),
            local_world_size=local_world,
            source="torchrun",
        )
    if "SLURM_PROCID" in env and _int(env, "SLURM_NTASKS") > 1:
        # srun started one task per GPU itself (no torchrun): we provide the rendezvous.
        nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if not nodelist:
            raise TameError("SLURM_NTASKS > 1 but SLURM_JOB_NODELIST is not set; launch with launch/slurm/*.sbatch")
        tasks_per_node = env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]
        job = _int(env, "SLURM_JOB_ID") if "SLURM_JOB_ID" in env else 0
        return Launch(
            rank=_int(env, "SLURM_PROCID"),
            world_size=_int(env, "SLURM_NTASKS"),
            local_rank=_int(env, "SLURM_LOCALID"),
            local_world_size=int(tasks_per_node) if tasks_per_node.isdigit() else _int(env, "SLURM_NTASKS"),
            master_addr=env.get("MASTER_ADDR") or first_host(nodelist),
            master_port=int(env["MASTER_PORT"]) if "MASTER_PORT" in env else 20000 + job % 20000,
            source="slurm",
        )
    return Launch()


def pick_device(preference: str, local_rank: int = 0, local_world_size: int = 1) -> torch.device:
    """``auto`` -> this rank's GPU when CUDA is present, else the CPU; more local processes than GPUs is an error."""
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TameError("config key train.device: 'cuda' but no CUDA device is visible (use train.device=cpu)")
    count = torch.cuda.device_count()
    if local_world_size > count:
        raise TameError(
            f"GPUS={local_world_size} processes on this node but only {count} CUDA device(s) are visible "
            f"(set GPUS<={count}, or check CUDA_VISIBLE_DEVICES)"
        )
    return torch.device("cuda", local_rank)


def setup(device: str = "auto", env: Mapping[str, str] | None = None) -> Dist:
    """Start the process group for this launch (nccl on GPU, gloo on CPU) and pick this rank's device."""
    launch = resolve_launch(env)
    target = pick_device(device, launch.local_rank, launch.local_world_size)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if launch.world_size > 1 and not torch_dist.is_initialized():
        if launch.master_addr is not None:
            os.environ.setdefault("MASTER_ADDR", launch.master_addr)
            os.environ.setdefault("MASTER_PORT", str(launch.master_port or DEFAULT_PORT))
        options = {}
        attempt = (os.environ if env is None else env).get("TORCHELASTIC_RESTART_COUNT")
        if attempt is not None:
            # torchrun keeps its store across worker restarts (--max-restarts): without a fresh prefix the restarted
            # workers read the dead ones' addresses and fail to connect (gloo) or hang
            store, _, _ = next(torch_dist.rendezvous("env://", rank=launch.rank, world_size=launch.world_size))
            options["store"] = torch_dist.PrefixStore(f"tame/attempt_{attempt}/", store)
        torch_dist.init_process_group(
            backend="nccl" if target.type == "cuda" else "gloo",
            rank=launch.rank,
            world_size=launch.world_size,
            device_id=target if target.type == "cuda" else None,
            **options,
        )
    return Dist(rank=launch.rank, world_size=launch.world_size, local_rank=launch.local_rank, device=target)


def cleanup() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()


def barrier(dist: Dist) -> None:
    if dist.distributed:
        torch_dist.barrier()


def broadcast_object(dist: Dist, value):
    """Rank 0's ``value`` on every rank (small picklable values: a path, a decision)."""
    if not dist.distributed:
        return value
    box = [value]
    torch_dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(dist: Dist, value) -> list:
    """Every rank's ``value``, in rank order, on every rank."""
    if not dist.distributed:
        return [value]
    out: list = [None] * dist.world_size
    torch_dist.all_gather_object(out, value)
    return out


def all_reduce_mean(dist: Dist, tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over ranks (a new tensor; the input is left alone)."""
    if not dist.distributed:
        return tensor
    out = tensor.detach().clone()
    torch_dist.all_reduce(out)
    return out / dist.world_size


def label_gatherer(dist: Dist):
    """For ``TameModel.gather_labels``: local labels [b] -> (the global batch's labels [N*b], this rank's offset).

    Every rank must hold the same number of samples (the loaders guarantee equal per-rank batches).
    """

    def gather(labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        out = labels.new_empty(dist.world_size * labels.shape[0])
        _all_gather_single(out, labels.contiguous())
        return out, dist.rank * labels.shape[0]

    return gather
