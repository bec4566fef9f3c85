"""Everything distributed in one place: how this process was launched (single, torchrun, SLURM), its device,
the process group, the collectives the engine and evaluation use, and BatchNorm synchronised across ranks.

Nothing else in ``tame`` calls ``torch.distributed`` directly.
"""

from tame.distributed.collectives import (
    all_reduce_mean,
    all_reduce_total,
    any_rank_async,
    barrier,
    broadcast_object,
    gather_interleaved,
    gather_objects,
    is_initialized,
    label_gatherer,
    varying_label_gatherer,
)
from tame.distributed.parallel import data_parallel, sync_batchnorm
from tame.distributed.process import (
    DEVICE_CHOICES,
    Dist,
    Launch,
    cleanup,
    first_host,
    launch_rank,
    parse_device,
    pick_device,
    resolve_launch,
    setup,
    started_by_torchrun,
)
from tame.distributed.syncbn import SyncBatchNorm2d, convert_sync_batchnorm

__all__ = [
    "DEVICE_CHOICES",
    "Dist",
    "Launch",
    "SyncBatchNorm2d",
    "all_reduce_mean",
    "all_reduce_total",
    "any_rank_async",
    "barrier",
    "broadcast_object",
    "cleanup",
    "convert_sync_batchnorm",
    "data_parallel",
    "first_host",
    "gather_interleaved",
    "gather_objects",
    "is_initialized",
    "label_gatherer",
    "launch_rank",
    "parse_device",
    "pick_device",
    "resolve_launch",
    "setup",
    "started_by_torchrun",
    "sync_batchnorm",
    "varying_label_gatherer",
]
