"""Optimiser and LR schedule of the reference (docs/METHOD.md, "Optimiser and schedule").

SGD with Nesterov momentum, two parameter groups of the AM:
- weights: every parameter whose name does not end in ``bias`` (conv weights *and* BatchNorm weights, as the
  reference's ``'weight' in name`` split), weight decay ``train.weight_decay``;
- biases: names ending in ``bias`` (conv, fuser and BatchNorm biases), no weight decay, twice the LR.
OneCycleLR with ``max_lr=[MLR, 2*MLR]`` and torch's defaults otherwise (as the reference: 30 % warm-up, cosine
annealing, div_factor 25, final_div_factor 1e4), stepped every batch over ``epochs * steps_per_epoch`` steps.
Momentum: ``train.cycle_momentum=true`` (the reference) cycles it inversely to the LR between
``train.max_momentum`` (0.95) and ``train.base_momentum`` (0.85), and ``train.momentum`` is not used;
``false`` keeps ``train.momentum`` throughout.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR

from tame.config import TrainConfig

BIAS_LR_FACTOR = 2.0
logger = logging.getLogger(__name__)


def parameter_groups(attention: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """The two groups (weights, biases) of the AM's trainable parameters."""
    weights, biases = [], []
    for name, param in attention.named_parameters():
        if param.requires_grad:
            (biases if name.endswith("bias") else weights).append(param)
    return [
        {"params": weights, "lr": lr, "weight_decay": weight_decay, "name": "weights"},
        {"params": biases, "lr": BIAS_LR_FACTOR * lr, "weight_decay": 0.0, "name": "biases"},
    ]


def build_optimizer(
    attention: nn.Module, lr: float, weight_decay: float, momentum: float, nesterov: bool = True
) -> torch.optim.SGD:
    """SGD (Nesterov by default) over :func:`parameter_groups`; ``lr`` is the weights' LR (biases get 2x)."""
    groups = parameter_groups(attention, lr, weight_decay)
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
    """One cycle over ``total_steps`` batches, peaking at ``max_lr`` (weights) and ``2 * max_lr`` (biases);
    momentum cycled between ``max_momentum`` and ``base_momentum`` when ``cycle_momentum`` (torch's defaults).

    ``last_epoch``: -1 for a new schedule (it writes its LR and momentum bounds into the optimizer's groups); S - 1
    to resume after S steps (torch's resume: the bounds are read from the groups, and step S's LR set in them)."""
    return OneCycleLR(
        optimizer,
        max_lr=[max_lr, BIAS_LR_FACTOR * max_lr],
        total_steps=total_steps,
        cycle_momentum=cycle_momentum,
        base_momentum=base_momentum,
        max_momentum=max_momentum,
        last_epoch=last_epoch,
    )


def training_schedule(optimizer: torch.optim.Optimizer, train: TrainConfig, total_steps: int, step: int = 0):
    """The one-cycle schedule of ``Config.train`` over ``total_steps``, at ``step`` (0: a new run; S: a run resumed
    after S steps, whose optimizer's groups hold this config's bounds: ``tame.checkpoint.resume``)."""
    return build_schedule(
        optimizer,
        train.max_lr,
        total_steps,
        cycle_momentum=train.cycle_momentum,
        base_momentum=train.base_momentum,
        max_momentum=train.max_momentum,
        last_epoch=step - 1,
    )


def training_optimizer(attention: nn.Module, train: TrainConfig) -> torch.optim.SGD:
    """The optimizer of a training run from ``Config.train`` (its schedule: :func:`training_schedule`)."""
    if train.cycle_momentum and train.momentum != TrainConfig.momentum:
        logger.warning(
            "train.momentum=%s is not used while train.cycle_momentum is true (momentum cycles between "
            "train.max_momentum=%s and train.base_momentum=%s); set train.cycle_momentum=false to train with it",
            train.momentum,
            train.max_momentum,
            train.base_momentum,
        )
    return build_optimizer(attention, train.max_lr, train.weight_decay, train.momentum, train.nesterov)


def build_training_optimizer(attention: nn.Module, train: TrainConfig, total_steps: int):
    """(optimizer, scheduler) of a new training run from ``Config.train``."""
    optimizer = training_optimizer(attention, train)
    return optimizer, training_schedule(optimizer, train, total_steps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the weights' LR to ``lr`` and the biases' to ``2 * lr`` (the LR range test sweeps this)."""
    weights, biases = optimizer.param_groups
    weights["lr"] = lr
    biases["lr"] = BIAS_LR_FACTOR * lr
