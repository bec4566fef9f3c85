"""The training step made data-parallel: the AM's BatchNorm over the global batch, its gradients averaged over ranks.

On CUDA (nccl) the AM's BatchNorm becomes ``torch.nn.SyncBatchNorm`` (torch's fused kernels); elsewhere (gloo on the
CPU, which ``torch.nn.SyncBatchNorm`` refuses) this package's :class:`~tame.distributed.syncbn.SyncBatchNorm2d`. Both
give every rank the statistics of the global batch, so N ranks with B/N images train as one process with B.

With ``backbone_mode: train`` (the paper configs) the frozen classifier's BatchNorm runs in training mode too and
normalises by its batch's statistics: it is synchronised the same way (``frozen``), so every rank normalises by the
global batch's, as the published single-process runs did. Its weights stay frozen and its running statistics are
restored after each step (``TameModel``); what the synchronisation adds is the forward all-reduces (two per layer
on gloo, one on nccl) and, in the masked pass, their backward for the gradient that reaches the AM through the
images. In eval mode the synchronised layers are plain BatchNorm (no collective). Dropout is not synchronised: each
rank draws its own masks, which is a different draw from one process's, with the same distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from inspect import signature

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from tame.distributed.process import Dist
from tame.distributed.syncbn import convert_sync_batchnorm

# no buffer broadcast before each forward (newer torch renames the option; its old name then warns)
_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)


def sync_batchnorm(module: nn.Module, dist: Dist) -> nn.Module:
    """Every ``BatchNorm2d`` of ``module`` synchronised across ranks, in place (torch's on CUDA, ours elsewhere);
    parameters, buffers and state-dict keys are kept. Returns ``module``."""
    if dist.device.type != "cuda":
        return convert_sync_batchnorm(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.BatchNorm2d:
                synced = nn.SyncBatchNorm.convert_sync_batchnorm(child)
                synced._forward_hooks = child._forward_hooks  # a feature tap on this layer keeps working
                synced._forward_pre_hooks = child._forward_pre_hooks
                setattr(parent, name, synced)
    return module


def data_parallel(
    step: nn.Module, dist: Dist, attention: nn.Module, frozen: Sequence[nn.Module] = ()
) -> DistributedDataParallel:
    """``DistributedDataParallel(step)`` with ``attention``'s BatchNorm synchronised (:func:`sync_batchnorm`), and
    that of the ``frozen`` networks (those that run in training mode during the step: ``backbone_mode: train``).

    Only the AM requires gradients, so only the AM is all-reduced. ``broadcast_buffers=False``: the classifier is
    frozen (its buffers never change: ``backbone_mode: train`` restores them after every step) and the synchronised
    BatchNorm updates the AM's running statistics identically on every rank, so DDP's default broadcast of rank 0's
    buffers before every forward would copy equal values (on a GPU, every BatchNorm buffer of the backbone, each step).
    (``forward_sync_buffers=False`` in torch versions that have it: the same, after one check at construction.)
    """
    for module in (attention, *frozen):
        sync_batchnorm(module, dist)
    device_ids = [dist.device.index] if dist.device.type == "cuda" else None
    return DistributedDataParallel(step, device_ids=device_ids, **_NO_BUFFER_SYNC)
