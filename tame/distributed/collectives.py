"""Collectives the engine and evaluation use; each is a no-op (returns its input) in a single process."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.distributed as torch_dist

from tame.distributed.process import Dist

# newer torch deprecates all_gather_into_tensor in favour of all_gather_single
_all_gather_single = getattr(torch_dist, "all_gather_single", None) or torch_dist.all_gather_into_tensor


def is_initialized() -> bool:
    """True when a process group is running (torchrun / SLURM with more than one process)."""
    return torch_dist.is_available() and torch_dist.is_initialized()


def all_reduce_total(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all ranks of the running process group (a new tensor; no gradient)."""
    out = tensor.detach().clone()
    if is_initialized():
        torch_dist.all_reduce(out)
    return out


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
    """A ``TameModel(label_gather=...)``: local labels [b] -> (the global batch's labels [N*b], this rank's offset).

    Every rank must hold the same number of samples (the loaders guarantee equal per-rank batches).
    """

    def gather(labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        out = labels.new_empty(dist.world_size * labels.shape[0])
        _all_gather_single(out, labels.contiguous())
        return out, dist.rank * labels.shape[0]

    return gather


def varying_label_gatherer(dist: Dist):
    """:func:`label_gatherer` for ranks that may hold different numbers of samples (none included): local labels
    [b_r] -> (every rank's, in rank order [sum b], this rank's offset sum_{q<r} b_q). Every rank calls it at the same
    points (a rank without samples calls it with an empty tensor)."""

    def gather(labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        sizes = labels.new_zeros(dist.world_size)
        _all_gather_single(sizes, labels.new_full((1,), labels.shape[0]))
        counts = sizes.tolist()
        padded = labels.new_full((max(max(counts), 1),), -1)
        padded[: labels.shape[0]] = labels
        out = labels.new_empty(dist.world_size * padded.shape[0])
        _all_gather_single(out, padded)
        parts = out.view(dist.world_size, -1)
        return torch.cat([part[:count] for part, count in zip(parts, counts)]), sum(counts[: dist.rank])

    return gather


def gather_interleaved(dist: Dist, tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` [n, ...] (the same n on every rank), interleaved: row j of rank r at j * W + r, so that
    an eval loader's shards (rank r reads list positions r, r + W, ...) come back in list order. A CPU tensor."""
    parts = gather_objects(dist, tensor.detach().cpu())
    return torch.stack(parts, dim=1).flatten(0, 1) if len(parts) > 1 else parts[0]


def any_rank_async(dist: Dist, flag: torch.Tensor) -> Callable[[], bool]:
    """Start agreeing whether ``flag`` (a one-element int tensor on ``dist.device``) is non-zero on any rank; the
    returned function waits for the answer, the same on every rank. Every rank must call it at the same point.

    Started at one training step and read at the next, it adds no synchronisation to the step (a blocking
    all-reduce would make the host wait for the device at every step)."""
    if not dist.distributed:
        answer = bool(flag.item())
        return lambda: answer
    out = flag.detach().clone()
    work = torch_dist.all_reduce(out, op=torch_dist.ReduceOp.MAX, async_op=True)

    def wait() -> bool:
        work.wait()
        return bool(out.item())

    return wait
