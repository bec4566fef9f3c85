"""One run session: what every run entry point (``tame train``, ``lr-find``, ``eval``, ``compare``, ``datalist
predict``) does before its own work and after it, written once.

    with run_session(cfg) as session:     # session.cfg, session.dist, session.output_dir
        torch.manual_seed(session.cfg.train.seed)
        cfg, classifier = build_classifier(session.cfg)  # the preprocessing resolved from the classifier
        loader = build_loader(cfg.data, list_file, root, train=True, dist=session.dist)

Entering: the process group is started (:func:`tame.distributed.setup`: torchrun, SLURM or one process) and the
global batch is checked to split evenly over the processes (:func:`tame.data.loaders.per_rank_batch`, the one
refusal every entry point shares). Leaving, normally or on an error: the process group ends.

The session does not resolve the config's auto preprocessing: that needs the classifier, which each entry point
builds once, after its seed, with :func:`tame.models.registry.build_classifier` (it returns the resolved config
too, and a weightless classifier drawn there keeps the run's random stream as it was).

Batch sizes: ``data.batch_size`` (and the ``--batch-size`` of ``tame eval`` / ``compare`` / ``datalist predict``)
is the GLOBAL batch, the images of one step over all processes; each process reads ``local_batch_size`` of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tame import distributed
from tame.config import Config, expand_path
from tame.data.loaders import per_rank_batch
from tame.distributed import Dist


@dataclass(frozen=True)
class RunSession:
    """What a run works with, set up once: the config, this process's place in the group, the output folder."""

    cfg: Config  # as given (auto preprocessing not yet resolved: build_classifier); data.batch_size: the global batch
    dist: Dist  # rank, world size, device
    output_dir: Path  # the run's folder (``output_dir`` of the config unless the entry point named another)
    local_batch_size: int  # this process's share of the global batch: cfg.data.batch_size // dist.world_size


@contextmanager
def run_session(
    cfg: Config,
    *,
    device: str | None = None,
    output_dir: str | Path | None = None,
    global_batch_size: int | None = None,
) -> Iterator[RunSession]:
    """The session of one run of ``cfg``; the process group ends when the block does, however it ends.

    ``device``: ``auto``, ``cpu``, ``cuda[:N]`` (default ``train.device``); ``output_dir``: default the config's;
    ``global_batch_size``: a command line's ``--batch-size``, replacing ``data.batch_size`` (global either way). A
    global batch that does not split evenly over the processes is a :class:`tame.errors.TameError`, raised on every
    rank before any work.
    """
    source = "config key data.batch_size"
    if global_batch_size is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, batch_size=global_batch_size))
        source = "--batch-size"
    folder = Path(output_dir) if output_dir is not None else expand_path(cfg.output_dir, "output_dir")
    dist = distributed.setup(device or cfg.train.device)
    try:
        local = per_rank_batch(cfg.data.batch_size, dist.world_size, source)
        yield RunSession(cfg, dist, folder, local)
    finally:
        distributed.cleanup()
