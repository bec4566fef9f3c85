"""Optimiser and LR schedule of the reference (docs/METHOD.md, "Optimiser and schedule").

SGD, momentum 0.9, Nesterov, two parameter groups of the AM:
- weights: every parameter whose name does not end in ``bias`` (conv weights *and* BatchNorm weights, as the
  reference's ``'weight' in name`` split), weight decay ``train.weight_decay``;
- biases: names ending in ``bias`` (conv, fuser and BatchNorm biases), no weight decay, twice the LR.
OneCycleLR with ``max_lr=[MLR, 2*MLR]`` and torch's defaults otherwise (as the reference: 30 % warm-up, cosine
annealing, div_factor 25, final_div_factor 1e4, and momentum cycled between 0.85 and 0.95), stepped every batch
over ``epochs * steps_per_epoch`` steps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR

BIAS_LR_FACTOR = 2.0


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


def build_optimizer(attention: nn.Module, lr: float, weight_decay: float, momentum: float) -> torch.optim.SGD:
    """SGD with Nesterov momentum over :func:`parameter_groups`; ``lr`` is the weights' LR (biases get 2x)."""
    return torch.optim.SGD(parameter_groups(attention, lr, weight_decay), lr=lr, momentum=momentum, nesterov=True)


def build_schedule(optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int) -> OneCycleLR:
    """One cycle over ``total_steps`` batches, peaking at ``max_lr`` (weights) and ``2 * max_lr`` (biases)."""
    return OneCycleLR(optimizer, max_lr=[max_lr, BIAS_LR_FACTOR * max_lr], total_steps=total_steps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the weights' LR to ``lr`` and the biases' to ``2 * lr`` (the LR range test sweeps this)."""
    weights, biases = optimizer.param_groups
    weights["lr"] = lr
    biases["lr"] = BIAS_LR_FACTOR * lr
