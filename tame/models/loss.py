"""The TAME loss (docs/METHOD.md, "The loss"): pure functions of their inputs, which they never change."""

from __future__ import annotations

import torch
import torch.nn.functional as F

CE_WEIGHT = 1.5
AREA_WEIGHT = 2.0
VARIATION_WEIGHT = 0.01
AREA_POWER = 0.3
AREA_EPS = 0.0005
BORDER_PENALTY = 0.3


def area_loss(masks: torch.Tensor) -> torch.Tensor:
    """masks: [B, N, h, w] in [0, 1] -> mean((R + 0.0005) ** 0.3)."""
    return torch.mean((masks + AREA_EPS) ** AREA_POWER)


def variation_loss(masks: torch.Tensor) -> torch.Tensor:
    """masks: [B, N, h, w] -> (sum of squared neighbour differences + 0.3 * squared border) / (2 B)."""
    vertical = torch.sum(torch.abs(masks[:, :, 1:, :] - masks[:, :, :-1, :]) ** 2)
    horizontal = torch.sum(torch.abs(masks[:, :, :, 1:] - masks[:, :, :, :-1]) ** 2)
    border = BORDER_PENALTY * torch.sum(
        masks[:, :, -1, :] ** 2 + masks[:, :, 0, :] ** 2 + masks[:, :, :, -1] ** 2 + masks[:, :, :, 0] ** 2
    )
    return (vertical + horizontal + border) / (2.0 * masks.size(0))


def tame_loss(logits: torch.Tensor, labels: torch.Tensor, masks: torch.Tensor) -> dict[str, torch.Tensor]:
    """logits: [B, K] of the masked images; labels: long [B]; masks: the regulariser set R [B, N, h, w].

    Returns ``{loss, ce, area, var}`` with loss = 1.5 ce + 2 area + 0.01 var (computed in float32).
    """
    masks = masks.float()
    ce = F.cross_entropy(logits.float(), labels)
    area = area_loss(masks)
    var = variation_loss(masks)
    return {"loss": CE_WEIGHT * ce + AREA_WEIGHT * area + VARIATION_WEIGHT * var, "ce": ce, "area": area, "var": var}
