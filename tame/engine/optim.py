"""Optimiser and LR schedule of the reference (docs/METHOD.md, "Optimiser and schedule").

SGD with Nesterov momentum (``train.optimizer: adamw``: AdamW with amsgrad, P-TAME's), two parameter groups of the AM:
- weights: every parameter whose name does not end in ``bias`` (conv weights *and* BatchNorm weights, as the
  reference's ``'weight' in name`` split), weight decay ``train.weight_decay``;
- biases: names ending in ``bias`` (conv, fuser and BatchNorm biases), ``train.bias_lr_factor`` times the LR
  (TAME and L-CAM: 2; T-TAME: 1), no weight decay unless ``train.bias_weight_decay`` (L-CAM decays them too).
Each group carries its ``lr_factor``, so the schedule and the LR range test scale both groups from one LR.

``train.schedule``:
- ``one_cycle`` (TAME, T-TAME): OneCycleLR peaking at ``max_lr`` (biases: ``factor * max_lr``) with torch's
  defaults otherwise (as the reference: 30 % warm-up, cosine annealing, div_factor 25, final_div_factor 1e4),
  stepped every batch over ``epochs * steps_per_epoch`` steps. Momentum: ``train.cycle_momentum=true`` (the
  reference) cycles it inversely to the LR between ``train.max_momentum`` (0.95) and ``train.base_momentum``
  (0.85), and ``train.momentum`` is not used; ``false`` keeps ``train.momentum`` throughout.
- ``epoch_decay`` (L-CAM's ``my_optim.reduce_lr``): ``max_lr * lr_decay ** min(epoch, N)``, the LR of epoch 0
  being ``max_lr`` and N = ``train.lr_decay_epochs`` (their ``change_points``: 1..12 for ResNet-50, 1..22 for
  VGG-16; None: no limit); momentum ``train.momentum`` throughout.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR

from tame.config import TrainConfig

BIAS_LR_FACTOR = TrainConfig.bias_lr_factor  # the published TAME's (and the config's default)
logger = logging.getLogger(__name__)


def parameter_groups(
    attention: nn.Module,
    lr: float,
    weight_decay: float,
    bias_lr_factor: float = BIAS_LR_FACTOR,
    bias_weight_decay: bool = False,
) -> list[dict]:
    """The two groups (weights, biases) of the AM's trainable parameters, each with its ``lr_factor``."""
    weights, biases = [], []
    for name, param in attention.named_parameters():
        if param.requires_grad:
            (biases if name.endswith("bias") else weights).append(param)
    bias_decay = weight_decay if bias_weight_decay else 0.0
    return [
        {"params": weights, "lr": lr, "weight_decay": weight_decay, "name": "weights", "lr_factor": 1.0},
        {
            "params": biases,
            "lr": bias_lr_factor * lr,
            "weight_decay": bias_decay,
            "name": "biases",
            "lr_factor": bias_lr_factor,
        },
    ]


def build_optimizer(
    attention: nn.Module,
    lr: float,
    weight_decay: float,
    momentum: float,
    nesterov: bool = True,
    *,
    bias_lr_factor: float = BIAS_LR_FACTOR,
    bias_weight_decay: bool = False,
    optimizer: str = "sgd",
) -> torch.optim.Optimizer:
    """SGD (Nesterov by default), or ``optimizer="adamw"`` (AdamW with amsgrad, beta1 = ``momentum``, P-TAME's), over
    :func:`parameter_groups`; ``lr`` is the weights' LR."""
    groups = parameter_groups(attention, lr, weight_decay, bias_lr_factor, bias_weight_decay)
    if optimizer == "adamw":  # P-TAME's (torch.optim.AdamW, amsgrad); OneCycleLR cycles its beta1 as momentum
        return torch.optim.AdamW(groups, lr=lr, betas=(momentum, 0.999), amsgrad=True)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)


def build_schedule(
    optimizer: torch.optim.Optimizer,
    max_lr: float,
    total_steps: int,
    *,
    cycle_momentum: bool = True,
    base_momentum: float = 0.85,
    max_momentum: float = 0.95,
    last_epoch: int = -1,
) -> OneCycleLR:
    """One cycle over ``total_steps`` batches, peaking at ``max_lr`` times each group's ``lr_factor``; momentum
    cycled between ``max_momentum`` and ``base_momentum`` when ``cycle_momentum`` (torch's defaults).

    ``last_epoch``: -1 for a new schedule (it writes its LR and momentum bounds into the optimizer's groups); S - 1
    to resume after S steps (torch's resume: the bounds are read from the groups, and step S's LR set in them)."""
    return OneCycleLR(
        optimizer,
        max_lr=[max_lr * group.get("lr_factor", 1.0) for group in optimizer.param_groups],
        total_steps=total_steps,
        cycle_momentum=cycle_momentum,
        base_momentum=base_momentum,
        max_momentum=max_momentum,
        last_epoch=last_epoch,
    )


def build_epoch_decay(
    optimizer: torch.optim.Optimizer,
    lr_decay: float,
    steps_per_epoch: int,
    last_epoch: int = -1,
    decay_epochs: int | None = None,
) -> LambdaLR:
    """The ``epoch_decay`` schedule, stepped every batch like OneCycleLR: the LR of step s is its group's initial LR
    times ``lr_decay ** min(s // steps_per_epoch, decay_epochs)`` (None: no limit); ``last_epoch`` as
    :func:`build_schedule`'s."""
    steps_per_epoch = max(1, steps_per_epoch)
    limit = float("inf") if decay_epochs is None else decay_epochs
    return LambdaLR(optimizer, lambda step: lr_decay ** min(step // steps_per_epoch, limit), last_epoch=last_epoch)


def training_schedule(
    optimizer: torch.optim.Optimizer, train: TrainConfig, total_steps: int, step: int = 0
) -> LRScheduler:
    """The schedule of ``Config.train`` (``train.schedule``) over ``total_steps``, at ``step`` (0: a new run; S: a
    run resumed after S steps, whose optimizer's groups hold this config's bounds: ``tame.checkpoint.resume``)."""
    if train.schedule == "epoch_decay":
        per_epoch = total_steps // train.epochs
        return build_epoch_decay(optimizer, train.lr_decay, per_epoch, step - 1, train.lr_decay_epochs)
    return build_schedule(
        optimizer,
        train.max_lr,
        total_steps,
        cycle_momentum=train.cycle_momentum,
        base_momentum=train.base_momentum,
        max_momentum=train.max_momentum,
        last_epoch=step - 1,
    )


def training_optimizer(attention: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of a training run from ``Config.train`` (its schedule: :func:`training_schedule`)."""
    if train.schedule == "one_cycle" and train.cycle_momentum and train.momentum != TrainConfig.momentum:
        logger.warning(
            "train.momentum=%s is not used while train.cycle_momentum is true (momentum cycles between "
            "train.max_momentum=%s and train.base_momentum=%s); set train.cycle_momentum=false to train with it",
            train.momentum,
            train.max_momentum,
            train.base_momentum,
        )
    return build_optimizer(
        attention,
        train.max_lr,
        train.weight_decay,
        train.momentum,
        train.nesterov,
        bias_lr_factor=train.bias_lr_factor,
        bias_weight_decay=train.bias_weight_decay,
        optimizer=train.optimizer,
    )


def build_training_optimizer(attention: nn.Module, train: TrainConfig, total_steps: int):
    """(optimizer, scheduler) of a new training run from ``Config.train``."""
    optimizer = training_optimizer(attention, train)
    return optimizer, training_schedule(optimizer, train, total_steps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the weights' LR to ``lr`` and every other group's to its ``lr_factor`` times ``lr`` (the LR range test
    sweeps this)."""
    for group in optimizer.param_groups:
        group["lr"] = group.get("lr_factor", 1.0) * lr
