"""Train the attention mechanism (AM) of a frozen classifier (docs/METHOD.md, "The training step").

One process (a GPU, or the CPU for small data):
    tame train --config configs/resnet50.yaml
    tame train --config configs/synthetic.yaml train.epochs=2 output_dir=snapshots/try
Four GPUs on one node (global batch 32 -> 8 per GPU; DDP synchronises the AM only):
    torchrun --standalone --nproc_per_node=4 -m tame.cli train --config configs/resnet50.yaml
    make train MODEL=resnet50 GPUS=4 ARGS="train.max_lr=2e-4"
SLURM, one or several nodes: launch/slurm/*.sbatch (see launch/README.md).

Killed, preempted or requeued? Run the same command again: ``train.resume: auto`` continues from the newest good
checkpoint in ``output_dir``, mid-epoch included, without repeating or skipping a batch (``tame.checkpoint.resume``).

The model owns the step (``TameModel.training_step``, run through ``TrainingStep``); this engine owns the rest:
DDP around that step (only the AM requires gradients, so only the AM is synchronised), the AM's BatchNorm
synchronised and the global batch's labels gathered for the ``batch`` regulariser, precision, checkpoints, logging.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tame import distributed
from tame.checkpoint.resume import Checkpoints
from tame.config import Config, expand_path, save_config
from tame.distributed import Dist
from tame.engine.optim import training_optimizer, training_schedule
from tame.engine.preemption import StopSignals
from tame.engine.run_lock import take_run_folder
from tame.engine.run_log import LossWindow, NonFiniteLoss, RunLog
from tame.engine.validation import Validation, validation_paths
from tame.errors import TameError
from tame.models import TameModel
from tame.models.registry import build_classifier
from tame.models.tame import TrainingStep
from tame.session import RunSession, run_session

logger = logging.getLogger(__name__)
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


@dataclass
class TrainingSetup:
    """Everything a step needs, built once: the model, the step module, data and precision; ``config`` is the run's
    config with the preprocessing resolved from the model (what the loader uses and the checkpoints save)."""

    model: TameModel
    step: nn.Module  # TrainingStep(model), or its DDP wrapper under torchrun: (images, labels) -> losses
    loader: Any  # the loader protocol of tame.data.loaders: len(), set_epoch(epoch, skip_batches), iteration
    steps_per_epoch: int
    autocast: AbstractContextManager
    scaler: torch.amp.GradScaler
    memory_format: torch.memory_format
    config: Config

    def losses(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """images [B, 3, H, W] in [0, 1], labels long [B] -> {loss, ce, area, var} (under the run's precision)."""
        images = images.contiguous(memory_format=self.memory_format)
        with self.autocast:
            return self.step(images, labels)

    def run_step(self, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor, step: int) -> dict:
        """:meth:`losses` and :meth:`update` of one step; the allocator's out-of-memory error (a CUDA OOM, the CPU
        allocator under ``ulimit -v`` or a SLURM memory limit) becomes :class:`OutOfMemory`, naming the batch."""
        try:
            losses = self.losses(images, labels)
            self.update(optimizer, losses["loss"])
        except (RuntimeError, MemoryError) as err:
            if not is_out_of_memory(err):
                raise
            raise OutOfMemory(step, len(images), self.config.data.batch_size) from None  # the global batch
        return losses

    def update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` and step ``optimizer`` (skipped by the fp16 scaler when the gradients overflowed)."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()


class OutOfMemory(Exception):
    """The training step ran out of memory; the message says which batch size to lower."""

    def __init__(self, step: int, per_process: int, batch_size: int) -> None:
        world = max(batch_size // max(per_process, 1), 1)  # a lower global batch must still split evenly
        lower = max(batch_size // 2 // world * world, world)
        super().__init__(
            f"out of memory at step {step} with a batch of {per_process} images per process (data.batch_size="
            f"{batch_size})"
        )
        self.advice = (
            f"lower data.batch_size, e.g. data.batch_size={lower}, or give the job more memory, then run again"
        )


def is_out_of_memory(err: BaseException) -> bool:
    """Whether ``err`` is an allocator's failure: CUDA's OOM, the CPU allocator's, or Python's MemoryError."""
    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


def train(cfg: Config, loader: Any = None) -> Path:
    """Run, or continue, the training that ``cfg`` describes; returns the output folder.

    ``loader``: a ready training loader (the protocol of ``tame.data.loaders``); default: built from ``cfg.data``.
    """
    data_paths = None if loader is not None else check_data_paths(cfg)  # fail before any work starts
    validation_paths(cfg)  # likewise the validation list, when one is set
    with run_session(cfg) as session:  # the process group; the global batch checked
        cfg, dist = session.cfg, session.dist
        with take_run_folder(cfg.output_dir, session.output_dir, dist), StopSignals(dist) as stop:  # one writer
            setup = build_training(cfg, dist, loader, data_paths)  # resolves the preprocessing from the model
            return _train(session, setup, stop)


def _train(session: RunSession, setup: TrainingSetup, stop: StopSignals) -> Path:
    cfg, dist, output_dir = setup.config, session.dist, session.output_dir  # the config resolved from the model
    model, steps_per_epoch = setup.model, setup.steps_per_epoch
    total_steps = cfg.train.epochs * steps_per_epoch
    optimizer = training_optimizer(model.attention, cfg.train)
    schedule_at = partial(training_schedule, train=cfg.train, total_steps=total_steps)  # (optimizer, step=S)
    checkpoints = Checkpoints(cfg, dist, output_dir, setup, optimizer, schedule_at)
    start_step = checkpoints.resume()
    scheduler = checkpoints.scheduler  # this run's schedule, at the resumed step
    validation = Validation.build(cfg, dist, model, output_dir, steps_per_epoch)  # data.val_list (checked) or none
    if dist.is_main:
        save_config(cfg, output_dir / "config.yaml")
    log = RunLog(cfg, output_dir, steps_per_epoch, enabled=dist.is_main, start_step=start_step, device=dist.device)
    window = LossWindow()
    every = cfg.train.checkpoint_every
    model.train()
    try:
        validation.start(log, start_step)  # the best epoch so far, from a resumed run's record
        for epoch in range(start_step // steps_per_epoch, cfg.train.epochs):
            skip = max(start_step - epoch * steps_per_epoch, 0)  # > 0 only when resuming mid-epoch
            setup.loader.set_epoch(epoch, skip_batches=skip)
            batches = log.progress(
                isolated_rng(islice(setup.loader, steps_per_epoch - skip)),
                total=total_steps,
                initial=start_step,
                desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
            )
            for step, (images, labels) in enumerate(batches, start=epoch * steps_per_epoch + skip + 1):
                losses = setup.run_step(optimizer, images, labels, step)  # {loss, ce, area, var}
                window.add(step, losses, lr=optimizer.param_groups[0]["lr"])  # the weights' LR of this step
                scheduler.step()
                agreed = stop.agreed()  # a collective: every rank calls it at every step, whatever else holds
                mid_epoch = step % steps_per_epoch != 0
                stopping = agreed and mid_epoch  # a stop signal on any rank: save this step, then stop
                save_now = mid_epoch and (stopping or (every > 0 and step % every == 0))
                if save_now or (cfg.log.log_every and step % cfg.log.log_every == 0):
                    log.scalars(step, window.flush(dist))  # raises NonFiniteLoss: nothing is saved past a NaN
                if save_now:
                    checkpoints.save(step)
                if stopping:
                    stop.stop(step, total_steps, checkpoints.last_written)  # raises Preempted (exit 143)
                validation.after_step(step)  # every train.val_every steps, if set
            log.scalars(step, window.flush(dist))
            checkpoints.save(step)
            validation.epoch_end(epoch + 1, step)  # -> best.pt
            log_explanations(log, model, first_of_global_batch(dist, images, cfg.log.images_per_epoch), step)
            log.epoch_end(epoch + 1, step, window.epoch_summary())
            stop.stop(step, total_steps, checkpoints.last_written)  # a signal at an epoch's last step
    except (NonFiniteLoss, OutOfMemory, OSError) as err:  # an OSError: a full disk writing the record or curve
        raise checkpoints.stopped(err) from None
    finally:
        log.close()
    logger.info("training done (%d epochs); checkpoints in %s", cfg.train.epochs, output_dir)
    return output_dir


def build_training(
    cfg: Config, dist: Dist, loader: Any = None, data_paths: tuple[Path, Path] | None = None
) -> TrainingSetup:
    """Build the model (frozen backbone; its training step wrapped by DDP when distributed), loader and precision."""
    configure_determinism(cfg.train.deterministic, dist.device)
    torch.manual_seed(cfg.train.seed)  # the same classifier (without weights) and AM initialisation on every rank
    cfg, classifier = build_classifier(cfg)  # the model's own sizes and normalisation where the config leaves them
    label_gather = distributed.label_gatherer(dist) if dist.distributed else None  # 'batch' R over the global batch
    model = TameModel.from_config(
        cfg.model, cfg.data.crop, cfg.train, cfg.data, label_gather=label_gather, classifier=classifier
    )
    model = model.to(dist.device)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.classifier.to(memory_format=memory_format)  # the backbone's convs; the AM's 1x1 convs gain nothing
    if cfg.train.compile:
        model.classifier.net.compile()  # in place: module names, and so the feature taps, stay as they are
    step: nn.Module = TrainingStep(model)
    if dist.distributed:  # BatchNorm over the global batch (AM; backbone too in train mode); gradients: the AM's only
        running = [net.net for net in (model.classifier, model.feature_net) if net is not None]
        frozen = running if model.backbone_mode == "train" else []
        step = distributed.data_parallel(step, dist, model.attention, frozen)
    if loader is None:
        from tame.data.loaders import build_loader

        root, list_file = data_paths or check_data_paths(cfg)
        loader = build_loader(
            cfg.data,
            list_file,
            root,
            train=True,
            dist=dist,
            seed=cfg.train.seed,
            num_classes=model.num_classes if cfg.train.label_source == "list" else None,
        )
    steps_per_epoch = len(loader)
    if cfg.train.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.train.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise TameError(
            f"config key data.batch_size: the training list has fewer images than one batch of "
            f"{cfg.data.batch_size}; use a smaller batch or a longer list"
        )
    amp_dtype = resolve_amp(cfg.train.amp, dist.device)
    autocast = nullcontext() if amp_dtype is None else torch.autocast(dist.device.type, dtype=amp_dtype)
    scaler = torch.amp.GradScaler(dist.device.type, enabled=amp_dtype == torch.float16)
    torch.manual_seed(cfg.train.seed + dist.rank)  # per-rank randomness (dropout in backbone_mode=train) from here
    return TrainingSetup(model, step, loader, steps_per_epoch, autocast, scaler, memory_format, cfg)


def isolated_rng(batches: Iterable) -> Iterator:
    """The batches of ``batches``, with torch's global RNG restored after each is fetched.

    A loader may draw from the global generator (``DataLoader`` seeds its workers that way at every new epoch);
    hiding those draws keeps the training's random stream (dropout in ``backbone_mode=train``) a function of the
    steps alone, so a run resumed mid-epoch continues exactly as an uninterrupted one.
    """
    iterator = iter(batches)
    while True:
        state = torch.get_rng_state()
        try:
            batch = next(iterator)
        except StopIteration:
            return
        finally:
            torch.set_rng_state(state)
        yield batch


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 on GPU, off on CPU; ``bf16`` / ``fp16`` / ``off`` as asked."""
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return AMP_DTYPES[amp]


def configure_determinism(deterministic: bool, device: torch.device) -> None:
    """Deterministic kernels where torch has them (a warning where not); cudnn autotuning otherwise."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = device.type == "cuda" and not deterministic


def check_data_paths(cfg: Config) -> tuple[Path, Path]:
    """The training image root and list, checked before any work starts (the message says how to fix it)."""
    root = expand_path(cfg.data.root, "data.root")
    list_file = expand_path(cfg.data.train_list, "data.train_list")
    if not root.is_dir():
        via = (
            f" (from {cfg.data.root}: export the variable pointing at the folder that holds it, or"
            if "$" in cfg.data.root
            else " (set"
        )
        raise TameError(f"config key data.root: image folder {root} not found{via} data.root=/path/to/images)")
    if not list_file.is_file():
        raise TameError(
            f"config key data.train_list: list file {list_file} not found; the paper's lists (VGG16_train.txt, "
            "ResNet50_train.txt) are in datalist/ILSVRC of github.com/bmezaris/TAME, or make one with "
            "`tame datalist predict`; or set data.train_list=/path/to/list.txt (any list of training images "
            "with train.label_source=model)"
        )
    return root, list_file


def first_of_global_batch(dist: Dist, images: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` images of the global batch whose slice on this rank is ``images`` (the ranks' slices, in
    rank order, are one process's batch): the same images whatever the number of ranks. Every rank calls it."""
    if not dist.distributed or count <= images.shape[0]:
        return images[:count]
    return torch.cat(distributed.gather_objects(dist, images[:count].cpu()))[:count].to(images.device)


def log_explanations(log: RunLog, model: TameModel, images: torch.Tensor, step: int) -> None:
    """A few explanation maps of the last global batch (rank 0 only; the AM's BatchNorm in eval mode)."""
    if not log.enabled or images.numel() == 0:
        return
    model.eval()
    explanation = model.explain(images)
    model.train()
    log.explanations(step, images, explanation.maps, explanation.classes)
