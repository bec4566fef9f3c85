"""How this process was launched: single process, torchrun, or SLURM ``srun``.

``resolve_launch(env)`` reads rank / world size / local rank from torchrun's variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``) or, without them, from SLURM's (``SLURM_PROCID``,
``SLURM_NTASKS``, ``SLURM_LOCALID``, with the rendezvous on the first node of ``SLURM_JOB_NODELIST``);
neither means one process. ``setup(device)`` then starts the process group (nccl on GPU, gloo on CPU)
and returns a :class:`Dist` that the engine passes around; only rank 0 logs and writes files.

Two ways a job hangs instead of training are refused in one line: SLURM variables that promise several tasks to a
process that ``srun`` did not start (a batch script calling ``tame train`` directly: the other ranks never come),
and a rendezvous that does not complete within ``TAME_RENDEZVOUS_TIMEOUT`` seconds (default 600: a task that died
or never started, a node that cannot reach the first one).
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as torch_dist

from tame.errors import TameError

DEFAULT_PORT = 29500
ELASTIC_RESTART_VARIABLE = "TORCHELASTIC_RESTART_COUNT"  # set by torchrun's agent for every worker it starts
RENDEZVOUS_TIMEOUT_VARIABLE = "TAME_RENDEZVOUS_TIMEOUT"
DEFAULT_RENDEZVOUS_TIMEOUT = 600.0  # seconds; torchrun's own rendezvous waits as long (join_timeout)


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


def started_by_torchrun(env: Mapping[str, str] | None = None) -> bool:
    """Whether a torchrun (elastic) agent started this process: it restarts workers that fail (``--max-restarts``)."""
    return ELASTIC_RESTART_VARIABLE in (os.environ if env is None else env)


def _slurm_tasks(env: Mapping[str, str]) -> int:
    """The tasks of this SLURM step: ``SLURM_STEP_NUM_TASKS``, which only ``srun`` sets for the tasks it starts.

    ``SLURM_NTASKS`` > 1 without it is a half-launched job (e.g. ``tame train`` called straight from a batch script
    with ``--ntasks=2``): one process that would wait for ranks nobody starts. Refused here, in one line.
    """
    if "SLURM_STEP_NUM_TASKS" in env:
        return _int(env, "SLURM_STEP_NUM_TASKS")
    promised = _int(env, "SLURM_NTASKS") if "SLURM_NTASKS" in env else 1
    if promised > 1:
        raise TameError(
            f"started without srun? SLURM_NTASKS={promised} promises {promised} processes, but this one was not "
            f"started by srun (SLURM_STEP_NUM_TASKS is not set) and would wait for the others forever; start the "
            f"tasks with srun or torchrun (launch/slurm/*.sbatch), or run one process outside the allocation"
        )
    return promised


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
    if "SLURM_PROCID" in env and _slurm_tasks(env) > 1:
        # srun started one task per GPU itself (no torchrun): we provide the rendezvous.
        nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if not nodelist:
            raise TameError("SLURM_NTASKS > 1 but SLURM_JOB_NODELIST is not set; launch with launch/slurm/*.sbatch")
        world = _slurm_tasks(env)
        per_node = (env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_NTASKS_PER_NODE", "")).split("(")[0]
        job = _int(env, "SLURM_JOB_ID") if "SLURM_JOB_ID" in env else 0
        return Launch(
            rank=_int(env, "SLURM_PROCID"),
            world_size=world,
            local_rank=_int(env, "SLURM_LOCALID"),
            local_world_size=int(per_node) if per_node.isdigit() else world,
            master_addr=env.get("MASTER_ADDR") or first_host(nodelist),
            master_port=int(env["MASTER_PORT"]) if "MASTER_PORT" in env else 20000 + job % 20000,
            source="slurm",
        )
    return Launch()


def launch_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank as its launcher set it (0 without one), for tagging log lines before the command checks
    the launch: never raises (a half-launched job is refused, in one line, where the process group is set up)."""
    try:
        return resolve_launch(env).rank
    except TameError:
        return 0


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
    env = os.environ if env is None else env
    launch = resolve_launch(env)
    target = pick_device(device, launch.local_rank, launch.local_world_size)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    if launch.world_size > 1 and not torch_dist.is_initialized():
        torch_dist.init_process_group(
            backend="nccl" if target.type == "cuda" else "gloo",
            rank=launch.rank,
            world_size=launch.world_size,
            device_id=target if target.type == "cuda" else None,
            store=_rendezvous(launch, env),
        )
    return Dist(rank=launch.rank, world_size=launch.world_size, local_rank=launch.local_rank, device=target)


def _rendezvous(launch: Launch, env: Mapping[str, str]) -> torch_dist.Store:
    """The store the ranks meet in: torchrun's own (its agent already gathered the workers), else a TCP store on
    the first node that every rank must join within the rendezvous timeout (a TameError naming what to check)."""
    attempt = env.get(ELASTIC_RESTART_VARIABLE)
    if attempt is not None:
        # torchrun keeps its store across worker restarts (--max-restarts): without a fresh prefix the restarted
        # workers read the dead ones' addresses and fail to connect (gloo) or hang
        store, _, _ = next(torch_dist.rendezvous("env://", rank=launch.rank, world_size=launch.world_size))
        return torch_dist.PrefixStore(f"tame/attempt_{attempt}/", store)
    host = launch.master_addr or env.get("MASTER_ADDR")
    if not host:
        raise TameError(
            f"RANK and WORLD_SIZE={launch.world_size} are set but MASTER_ADDR is not: start the processes with "
            "torchrun, or set MASTER_ADDR (and MASTER_PORT) to the host of rank 0"
        )
    port = launch.master_port or int(env.get("MASTER_PORT", DEFAULT_PORT))
    timeout = _rendezvous_timeout(env)
    deadline = time.monotonic() + timeout
    try:
        if launch.rank != 0:
            _wait_for_port(host, port, deadline)  # quietly: torch's own client retries log a page per attempt
        left = max(deadline - time.monotonic(), 1.0)
        store = torch_dist.TCPStore(
            host, port, launch.world_size, is_master=launch.rank == 0, timeout=timedelta(seconds=left)
        )
        store.set_timeout(timedelta(seconds=timeout))  # the whole wait again for the group's own use of the store
        return store
    except (TimeoutError, torch_dist.DistError) as err:
        reason = str(err).splitlines()[0] if str(err) else "timed out"
        what = f"did not complete within {timeout:g} s" if time.monotonic() >= deadline - 0.5 else "failed"
        raise TameError(
            f"rank {launch.rank} of {launch.world_size}: the rendezvous at {host}:{port} {what} ({reason}); were all "
            f"{launch.world_size} processes started, and can every node reach {host}? ({RENDEZVOUS_TIMEOUT_VARIABLE} "
            "sets the wait)"
        ) from None


def _rendezvous_timeout(env: Mapping[str, str]) -> float:
    text = env.get(RENDEZVOUS_TIMEOUT_VARIABLE)
    if text is None:
        return DEFAULT_RENDEZVOUS_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise TameError(f"environment variable {RENDEZVOUS_TIMEOUT_VARIABLE}={text!r} must be a number of seconds > 0")
    return value


def _wait_for_port(host: str, port: int, deadline: float) -> None:
    """Return once ``host:port`` accepts a connection (rank 0's store is up); TimeoutError at ``deadline``."""
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(min(deadline - time.monotonic(), 2.0), 0.1)):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.2)


def cleanup() -> None:
    if torch_dist.is_initialized():
        torch_dist.destroy_process_group()
