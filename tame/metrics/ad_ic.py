"""Average Drop (AD) and Increase in Confidence (IC) at 100 %, 50 % and 15 % (docs/METHOD.md, "AD and IC").

For image i with predicted class k_i: Y_i = softmax(f(x_i))[k_i]; the explanation map keeps its top pixels at
level p (soft values, the rest zeroed; ties at the threshold as the authors' ``drop_Npercent``, see
:func:`keep_top_fraction`); O_i = softmax(f(x_i ⊙ map_i))[k_i].

    AD = 100/N · Σ max(0, Y_i − O_i) / Y_i          IC = 100/N · Σ 1[O_i > Y_i]

All functions are pure: they never change their inputs.
"""

from __future__ import annotations

import math

import torch

from tame.errors import TameError

LEVELS = (1.0, 0.5, 0.15)  # fractions of the map kept, as the TAME tables report them


def level_name(fraction: float) -> str:
    """0.15 -> '15%' (the column names of the reference CSV)."""
    return f"{fraction * 100:g}%"


def top_count(fraction: float, height: int, width: int) -> int:
    """Pixels kept at ``fraction``: ceil(fraction · H · W)."""
    if not 0 < fraction <= 1:
        raise TameError(f"fraction of pixels must lie in (0, 1], got {fraction}")
    return min(math.ceil(fraction * height * width), height * width)


def pixel_order(maps: torch.Tensor) -> torch.Tensor:
    """maps: [B, H, W] -> long [B, H·W], pixel indices from most to least relevant.

    A stable sort, so equal values keep raster order: among ties the earlier pixel ranks higher (ROAD's ranking;
    AD/IC reads only its threshold value from it, see :func:`keep_top_fraction`).
    """
    return torch.sort(maps.flatten(1), dim=1, descending=True, stable=True).indices


def pixel_mask(indices: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """indices: long [B, n] raster positions -> bool [B, H, W] (the shape of ``maps``), True at those pixels."""
    mask = torch.zeros(maps.shape[0], maps.shape[-2] * maps.shape[-1], dtype=torch.bool, device=maps.device)
    return mask.scatter_(1, indices, True).view(maps.shape)


def drop_counts(fraction: float, pixels: int) -> tuple[int, int]:
    """(rank of the threshold, pixels to keep) at ``fraction`` of ``pixels``, computed as the authors' code does with
    its drop percent q = 1 − fraction (0.85 for 15 %): int(q·n) and ceil((1 − q)·n), in float. The second is
    ceil(fraction·n) except where fraction·n is an integer and the float 1 − q lies above it (4 of 20 at 15 %)."""
    if not 0 < fraction < 1:
        raise TameError(f"fraction of pixels kept must lie in (0, 1) to drop any, got {fraction}")
    dropped = 1.0 - fraction
    rank, keep = int(pixels * dropped), math.ceil((1.0 - dropped) * pixels)
    if rank < 1:
        raise TameError(f"a map of {pixels} pixels has no pixel to drop at {level_name(fraction)}; use a larger map")
    return rank, keep


def keep_top_fraction(maps: torch.Tensor, fraction: float, order: torch.Tensor | None = None) -> torch.Tensor:
    """maps: [B, H, W] -> [B, H, W]: the top pixels keep their values, the rest become 0 (the authors'
    ``drop_Npercent`` of bmezaris/TAME ``scripts/utilities/metrics.py`` with percent 1 − fraction).

    With (r, n) = :func:`drop_counts`: t is the r-th smallest value of the map; every pixel below t becomes 0; if
    more than n pixels are then positive, the surplus is taken from the pixels equal to t, the *first* ones in raster
    order, so among ties the later pixels are kept. Without ties (and without zeros) exactly n pixels remain; with
    t = 0 nothing beyond the zeros is dropped. ``fraction`` 1 returns a copy.

    ``order``: ``pixel_order(maps)`` when the caller already has it (one sort serves every fraction).
    """
    height, width = maps.shape[-2:]
    pixels = height * width
    if top_count(fraction, height, width) == pixels:
        return maps.clone()
    rank, keep = drop_counts(fraction, pixels)
    flat = maps.flatten(1)
    if order is None:
        order = pixel_order(maps)
    threshold = flat.gather(1, order[:, pixels - rank : pixels - rank + 1])  # the rank-th smallest value: [B, 1]
    zero = torch.zeros((), dtype=maps.dtype, device=maps.device)
    kept = torch.where(flat < threshold, zero, flat)
    surplus = (kept > 0).sum(dim=1, keepdim=True) - keep  # [B, 1]
    ties = kept == threshold
    dropped = ties & (ties.cumsum(dim=1) <= surplus)  # the first `surplus` ties in raster order
    return torch.where(dropped, zero, kept).view(maps.shape)


def class_probability(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """logits: [B, K], classes: long [B] -> softmax(logits)[b, classes[b]]: [B]."""
    return torch.softmax(logits.float(), dim=1).gather(1, classes.view(-1, 1))[:, 0]


def confidence_drop(base: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Per image max(0, Y − O) / Y: [N] (Y = ``base``, O = ``masked``, both [N])."""
    return (base - masked).clamp(min=0) / base


def confidence_increase(base: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Per image 1[O > Y]: bool [N]."""
    return masked > base


def average_drop(base: torch.Tensor, masked: torch.Tensor) -> float:
    """AD in percent over N images: base = Y [N], masked = O [N]."""
    _check_pair(base, masked)
    return 100.0 * confidence_drop(base.double(), masked.double()).mean().item()


def increase_in_confidence(base: torch.Tensor, masked: torch.Tensor) -> float:
    """IC in percent over N images: base = Y [N], masked = O [N]."""
    _check_pair(base, masked)
    return 100.0 * confidence_increase(base, masked).double().mean().item()


def _check_pair(base: torch.Tensor, masked: torch.Tensor) -> None:
    if base.shape != masked.shape or base.dim() != 1 or base.numel() == 0:
        raise TameError(f"expected two non-empty [N] tensors, got {tuple(base.shape)} and {tuple(masked.shape)}")
