"""Train the attention mechanism (AM) of a frozen classifier (DESIGN section 2).

One process (a GPU, or the CPU for small data):
    tame train --config configs/resnet50.yaml
    tame train --config configs/synthetic.yaml train.epochs=2 output_dir=snapshots/try
Four GPUs on one node (global batch 32 -> 8 per GPU; DDP around the AM only):
    torchrun --standalone --nproc_per_node=4 -m tame.cli train --config configs/resnet50.yaml
    make train MODEL=resnet50 GPUS=4 ARGS="train.max_lr=2e-4"
SLURM, one or several nodes: launch/slurm/*.sbatch (see launch/README.md).

Killed, preempted or requeued? Run the same command again: ``train.resume: auto`` continues from the newest good
checkpoint in ``output_dir``, mid-epoch included, without repeating or skipping a batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from tame import distributed
from tame.config import Config, expand_path, save_config
from tame.distributed import Dist, convert_sync_batchnorm
from tame.engine.checkpoint import (
    checkpoint_files,
    checkpoint_path,
    load_checkpoint,
    newest_good_checkpoint,
    remove_temporaries,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from tame.engine.optim import build_optimizer, build_schedule
from tame.engine.run_log import LossWindow, NonFiniteLoss, RunLog, warn
from tame.errors import TameError
from tame.models import TameModel

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "off": None}


@dataclass
class TrainingSetup:
    """Everything a step needs, built once: the model, the module the AM runs through, data and precision."""

    model: TameModel
    attention: nn.Module  # model.attention, or its DDP wrapper under torchrun
    loader: Any  # the loader protocol of tame.data.loaders: len(), set_epoch(epoch, skip_batches), iteration
    steps_per_epoch: int
    autocast: AbstractContextManager
    scaler: torch.amp.GradScaler
    memory_format: torch.memory_format


def train(cfg: Config, loader: Any = None) -> Path:
    """Run, or continue, the training that ``cfg`` describes; returns the output folder.

    ``loader``: a ready training loader (the protocol of ``tame.data.loaders``); default: built from ``cfg.data``.
    """
    data_paths = None if loader is not None else check_data_paths(cfg)  # fail before any work starts
    dist = distributed.setup(cfg.train.device)
    try:
        check_world_size(cfg, dist.world_size)
        run = prepare(cfg, dist, loader, data_paths)
        return _train(cfg, dist, run)
    finally:
        distributed.cleanup()


def _train(cfg: Config, dist: Dist, run: TrainingSetup) -> Path:
    model, steps_per_epoch = run.model, run.steps_per_epoch
    output_dir = expand_path(cfg.output_dir, "output_dir")
    total_steps = cfg.train.epochs * steps_per_epoch
    optimizer = build_optimizer(model.attention, cfg.train.max_lr, cfg.train.weight_decay, cfg.train.momentum)
    scheduler = build_schedule(optimizer, cfg.train.max_lr, total_steps)
    checkpoints = Checkpoints(cfg, dist, output_dir, run, optimizer, scheduler)
    start_step = checkpoints.resume()
    if dist.is_main:
        save_config(cfg, output_dir / "config.yaml")
    log = RunLog(cfg, output_dir, enabled=dist.is_main, start_step=start_step, device=dist.device)
    window = LossWindow()
    every = cfg.train.checkpoint_every
    model.train()
    try:
        for epoch in range(start_step // steps_per_epoch, cfg.train.epochs):
            skip = max(start_step - epoch * steps_per_epoch, 0)  # > 0 only when resuming mid-epoch
            run.loader.set_epoch(epoch, skip_batches=skip)
            batches = log.progress(
                isolated_rng(islice(run.loader, steps_per_epoch - skip)),
                total=total_steps,
                initial=start_step,
                desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
            )
            for step, (images, labels) in enumerate(batches, start=epoch * steps_per_epoch + skip + 1):
                images = images.contiguous(memory_format=run.memory_format)  # [B, 3, H, W] in [0, 1]
                with run.autocast:
                    losses = model.training_step(images, labels, attention=run.attention)  # {loss, ce, area, var}
                optimizer.zero_grad(set_to_none=True)
                run.scaler.scale(losses["loss"]).backward()
                run.scaler.step(optimizer)  # skipped by the fp16 scaler when the gradients overflowed
                run.scaler.update()
                window.add(step, losses, lr=optimizer.param_groups[0]["lr"])  # the weights' LR of this step
                scheduler.step()
                save_now = every > 0 and step % every == 0 and step % steps_per_epoch != 0
                if save_now or (cfg.log.log_every and step % cfg.log.log_every == 0):
                    log.scalars(step, window.flush(dist))  # raises NonFiniteLoss: nothing is saved past a NaN
                if save_now:
                    checkpoints.save(step)
            log.scalars(step, window.flush(dist))
            checkpoints.save(step)
            log_explanations(log, model, images[: cfg.log.images_per_epoch], step)
            log.epoch_end(epoch + 1, step, window.epoch_summary())
    except NonFiniteLoss as err:
        newest = checkpoints.last_written
        raise TameError(
            f"{err}: training stopped; the last good checkpoint is {newest or 'none (none written yet)'}"
            " (lower train.max_lr, or try train.amp=bf16/off, then run again to resume)"
        ) from None
    finally:
        log.close()
    if dist.is_main:
        print(f"tame: training done ({cfg.train.epochs} epochs); checkpoints in {output_dir}", flush=True)
    return output_dir


def prepare(cfg: Config, dist: Dist, loader: Any = None, data_paths: tuple[Path, Path] | None = None) -> TrainingSetup:
    """Build the model (frozen backbone, AM wrapped by DDP when distributed), the loader and the precision."""
    configure_determinism(cfg.train.deterministic, dist.device)
    torch.manual_seed(cfg.train.seed)  # the same AM initialisation on every rank
    model = TameModel.from_config(cfg.model, input_size=cfg.data.crop, train_cfg=cfg.train).to(dist.device)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model.classifier.to(memory_format=memory_format)  # the backbone's convs; the AM's 1x1 convs gain nothing
    if cfg.train.compile:
        model.classifier.net.compile()  # in place: module names, and so the feature taps, stay as they are
    attention: nn.Module = model.attention
    if dist.distributed:
        convert_sync_batchnorm(model.attention)  # BatchNorm statistics over the global batch
        model.gather_labels = distributed.label_gatherer(dist)  # the 'batch' regulariser sees all labels
        device_ids = [dist.device.index] if dist.device.type == "cuda" else None
        attention = DistributedDataParallel(model.attention, device_ids=device_ids)
    if loader is None:
        from tame.data.loaders import build_loader

        root, list_file = data_paths or check_data_paths(cfg)
        loader = build_loader(
            cfg.data,
            list_file,
            root,
            train=True,
            device=dist.device,
            rank=dist.rank,
            world_size=dist.world_size,
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
    return TrainingSetup(model, attention, loader, steps_per_epoch, autocast, scaler, memory_format)


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


def check_world_size(cfg: Config, world_size: int) -> None:
    """The global batch must split evenly over the processes."""
    if cfg.data.batch_size % world_size:
        raise TameError(
            f"config key data.batch_size: {cfg.data.batch_size} does not split evenly over "
            f"{world_size} processes; use a multiple of {world_size}"
        )


def log_explanations(log: RunLog, model: TameModel, images: torch.Tensor, step: int) -> None:
    """A few explanation maps of the last batch (rank 0 only; the AM's BatchNorm in eval mode)."""
    if not log.enabled or images.numel() == 0:
        return
    model.eval()
    explanation = model.explain(images)
    model.train()
    log.explanations(step, images, explanation.maps, explanation.classes)


class Checkpoints:
    """Writes (rank 0) and restores (every rank) the full training state of a run."""

    def __init__(self, cfg: Config, dist: Dist, output_dir: Path, run: TrainingSetup, optimizer, scheduler) -> None:
        self.cfg, self.dist, self.output_dir, self.run = cfg, dist, output_dir, run
        self.optimizer, self.scheduler = optimizer, scheduler
        self.last_written: Path | None = None  # the newest checkpoint on disk: this run's, or the one it resumed

    def save(self, step: int) -> None:
        """An epoch checkpoint at the end of an epoch, a step checkpoint otherwise (all ranks call this)."""
        path = checkpoint_path(self.output_dir, step, self.run.steps_per_epoch)
        rng = distributed.gather_objects(self.dist, rng_state(self.dist.device))  # every rank's, in rank order
        if self.dist.is_main:
            state = {
                "attention": {k: v.detach().cpu() for k, v in self.run.model.attention.state_dict().items()},
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.run.scaler.state_dict(),
                "epoch": step // self.run.steps_per_epoch,
                "step": step,
                "steps_per_epoch": self.run.steps_per_epoch,
                "world_size": self.dist.world_size,
                "rng": {key: torch.stack([r[key] for r in rng]) for key in rng[0]},  # [world, n] uint8
                "config": asdict(self.cfg),
                "meta": self.run.model.attention_meta(),
            }
            try:
                save_checkpoint(state, path, keep=self.cfg.train.keep_checkpoints)
            except OSError as err:  # a full disk, a folder made read-only: the older checkpoints are untouched
                raise TameError(
                    f"cannot write {path}: {err.strerror or err}; the last good checkpoint is "
                    f"{self.last_written or 'none (none written yet)'} (free space or fix the folder, then run "
                    "again to resume)"
                ) from None
        self.last_written = path

    def resume(self) -> int:
        """Load the checkpoint that ``train.resume`` names (``auto``: the newest good one); returns its step."""
        found, decision = None, None
        if self.dist.is_main:
            remove_temporaries(self.output_dir)  # left by a run killed while it wrote a checkpoint
            try:
                found = self._choose()
                decision = found[0] if found else None
            except TameError as err:
                decision = err
        decision = distributed.broadcast_object(self.dist, decision)  # every rank takes rank 0's decision
        if isinstance(decision, TameError):
            raise decision
        if decision is None:
            return 0
        path, state = found or (decision, load_checkpoint(decision))
        self._restore(path, state)
        self.last_written = path
        return int(state["step"])

    def _choose(self) -> tuple[Path, dict] | None:
        mode = self.cfg.train.resume
        steps = self.run.steps_per_epoch
        if mode == "none":
            if checkpoint_files(self.output_dir, steps):
                raise TameError(
                    f"output_dir {self.output_dir} holds checkpoints of an earlier run; set "
                    "train.resume=auto to continue it, or choose another output_dir"
                )
            return None
        if mode == "auto":
            found = newest_good_checkpoint(self.output_dir, steps, warn)
            if found is None:
                return None
            path, state = found
        else:
            path = expand_path(mode, "train.resume")
            if not path.is_file():
                raise TameError(f"config key train.resume: checkpoint {path} not found (auto, none or a path)")
            state = load_checkpoint(path)
        print(f"tame: resuming from {path} (step {state['step']})", flush=True)
        return path, state

    def _restore(self, path: Path, state: dict) -> None:
        run, model = self.run, self.run.model
        if int(state["steps_per_epoch"]) != run.steps_per_epoch:
            raise TameError(
                f"checkpoint {path} was written with {state['steps_per_epoch']} steps per epoch, this "
                f"run has {run.steps_per_epoch} (data list or batch size changed); resuming would "
                "repeat or skip batches: set train.resume=none and a new output_dir"
            )
        changed = _changed_settings(dict(state.get("config") or {}), asdict(self.cfg))
        if changed and self.dist.is_main:
            warn(f"resuming {path.name} with changed settings: {', '.join(changed)}")
        model.load_attention(path)  # checks that the AM fits: model layers, version, shapes
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            run.scaler.load_state_dict(state["scaler"])
        if int(state.get("world_size", 1)) == self.dist.world_size:
            set_rng_state({k: v[self.dist.rank] for k, v in state["rng"].items()}, self.dist.device)
        elif self.dist.is_main:
            warn(
                f"checkpoint {path.name} was written by {state.get('world_size')} processes, this run has "
                f"{self.dist.world_size}: random states start afresh"
            )


def _changed_settings(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """``key: old -> new`` for settings that differ (logging, output folder and resume mode are ignored)."""
    out = []
    for key, value in current.items():
        name = f"{prefix}{key}"
        if name in ("log", "output_dir", "train.resume") or key not in saved:
            continue
        if isinstance(value, dict) and isinstance(saved[key], dict):
            out += _changed_settings(saved[key], value, f"{name}.")
        elif saved[key] != value:
            out.append(f"{name}: {saved[key]!r} -> {value!r}")
    return out
