"""The TAME-family loss (docs/METHOD.md, "The loss"): pure functions of their inputs, which they never change.

loss = ce_weight * CE + area_weight * mean((R + area_eps) ** area_power) + variation_weight * V, with V the
smoothness term of :func:`variation_loss`. TAME, T-TAME and L-CAM-Img share the published weights
(:data:`TAME_WEIGHTS`); a version with other weights lists its own in :mod:`tame.models.versions`, and a config's
``train.loss`` overrides any of them (:func:`tame.models.versions.loss_weights`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossWeights:
    """The coefficients of one version's loss (the published code's names in comments)."""

    ce: float = 1.5  # ce_coeff
    area: float = 2.0  # area_loss_coeff
    variation: float = 0.01  # smoothness_loss_coeff
    area_power: float = 0.3  # area_loss_power
    area_eps: float = 0.0005  # added before the power (the derivative of x ** 0.3 at 0 is infinite)
    variation_power: float = 2.0  # smoothness power
    border_penalty: float = 0.3  # smoothness border penalty


TAME_WEIGHTS = LossWeights()
# P-TAME's ResNet-50 run (IDT-ITI/P-TAME configs/experiment/tab1_resnet50.yaml); its other runs set train.loss.*
PTAME_WEIGHTS = LossWeights(ce=0.16142940055382465, area=0.8385705994463174, variation=0.0)


def area_loss(masks: torch.Tensor, weights: LossWeights = TAME_WEIGHTS) -> torch.Tensor:
    """masks: [B, N, h, w] in [0, 1] -> mean((R + 0.0005) ** 0.3)."""
    return torch.mean((masks + weights.area_eps) ** weights.area_power)


def variation_loss(masks: torch.Tensor, weights: LossWeights = TAME_WEIGHTS) -> torch.Tensor:
    """masks: [B, N, h, w] -> (sum |neighbour differences| ** p + 0.3 * sum border ** p) / (p B), p = 2."""
    power = weights.variation_power
    vertical = torch.sum(torch.abs(masks[:, :, 1:, :] - masks[:, :, :-1, :]) ** power)
    horizontal = torch.sum(torch.abs(masks[:, :, :, 1:] - masks[:, :, :, :-1]) ** power)
    border = weights.border_penalty * torch.sum(
        masks[:, :, -1, :] ** power
        + masks[:, :, 0, :] ** power
        + masks[:, :, :, -1] ** power
        + masks[:, :, :, 0] ** power
    )
    return (vertical + horizontal + border) / (power * masks.size(0))


def tame_loss(
    logits: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor, weights: LossWeights = TAME_WEIGHTS
) -> dict[str, torch.Tensor]:
    """logits: [B, K] of the masked images; labels: long [B]; masks: the regulariser set R [B, N, h, w].

    Returns ``{loss, ce, area, var}`` with loss = 1.5 ce + 2 area + 0.01 var (computed in float32).
    """
    masks = masks.float()
    ce = F.cross_entropy(logits.float(), labels)
    area = area_loss(masks, weights)
    var = variation_loss(masks, weights)
    loss = weights.ce * ce + weights.area * area + weights.variation * var
    return {"loss": loss, "ce": ce, "area": area, "var": var}
