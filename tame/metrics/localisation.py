"""Localisation against ground truth: pointing game and energy-based pointing game.

Ground truth is a region mask per image (bool [B, H, W], the union of the explained class's objects), made
from segmentation masks or from boxes with :func:`tame.data.boxes.boxes_to_mask`.

- pointing game (Zhang et al. 2016): a hit when the map's maximum (first in raster order) lies in the region,
  or within ``tolerance`` pixels of it;
- energy-based pointing game (Wang et al. 2020, Score-CAM): the share of the map's total mass in the region.
"""

from __future__ import annotations

import torch

from tame.errors import TameError


def _check(maps: torch.Tensor, regions: torch.Tensor) -> None:
    if maps.dim() != 3 or regions.shape != maps.shape:
        raise TameError(
            f"expected maps [B, H, W] and regions of the same shape, got {tuple(maps.shape)} and {tuple(regions.shape)}"
        )


def pointing_game(maps: torch.Tensor, regions: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """maps: [B, H, W], regions: bool [B, H, W] -> bool [B], hit or miss per image.

    ``tolerance``: pixels; a hit when some region pixel lies within this distance of the maximum
    (TorchRay uses 15 at 224 px). Images without any region pixel count as misses.
    """
    _check(maps, regions)
    batch, height, width = maps.shape
    peak = maps.flatten(1).argmax(dim=1)  # [B], first maximum in raster order
    py, px = peak // width, peak % width
    if tolerance <= 0:
        return regions.flatten(1).gather(1, peak.view(-1, 1))[:, 0]
    ys = torch.arange(height, device=maps.device).view(1, -1, 1)
    xs = torch.arange(width, device=maps.device).view(1, 1, -1)
    near = (ys - py.view(-1, 1, 1)) ** 2 + (xs - px.view(-1, 1, 1)) ** 2 <= tolerance**2  # [B, H, W]
    return (near & regions).flatten(1).any(dim=1)


def energy_pointing_game(maps: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """maps: [B, H, W] (non-negative), regions: bool [B, H, W] -> [B]: Σ map inside / Σ map (0 for an all-zero map)."""
    _check(maps, regions)
    total = maps.flatten(1).double().sum(dim=1)
    inside = (maps * regions).flatten(1).double().sum(dim=1)
    return torch.where(total > 0, inside / torch.where(total > 0, total, torch.ones_like(total)), 0.0)
