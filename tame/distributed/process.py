"""How this process was launched: single process, torchrun, or SLURM ``srun``.

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

    @classmethod
    def local(cls, device: str | torch.device = "cpu") -> Dist:
        """One process on ``device``, no process group (a loader or an evaluation outside any launch)."""
        return cls(rank=0, world_size=1, local_rank=0, device=torch.device(device))

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


DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def parse_device(text: str) -> str:
    """A device preference as the commands take it (``auto``, ``cpu``, ``cuda``, ``cuda:N``), checked; TameError else.

    Only the spelling is checked here; whether the device exists is :func:`pick_device`'s business.
    """
    value = str(text).strip().lower()
    if value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", value):
        return value
    raise TameError(f"device must be {DEVICE_CHOICES}, got {text!r}")


def pick_device(preference: str, local_rank: int = 0, local_world_size: int = 1) -> torch.device:
    """``auto`` -> this rank's GPU when CUDA is present, else the CPU; ``cuda:N`` -> that GPU (one process only);
    more local processes than GPUs, or no GPU where one is asked for, is a TameError."""
    preference = parse_device(preference)
    if preference == "cpu" or (preference == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise TameError(
            f"device {preference!r} (--device / train.device) asked for, but no CUDA device is visible (use cpu)"
        )
    count = torch.cuda.device_count()
    if preference.startswith("cuda:"):
        index = int(preference.split(":")[1])
        if index >= count:
            raise TameError(f"device {preference!r}: only {count} CUDA device(s) are visible")
        if local_world_size > 1:
            raise TameError(f"device {preference!r} names one GPU, but {local_world_size} processes share this node")
        return torch.device("cuda", index)
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
