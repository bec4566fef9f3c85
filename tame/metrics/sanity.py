"""Similarity of two explanation maps, as the sanity checks measure it (Adebayo et al., NeurIPS 2018).

Each function takes maps a, b [B, H, W] and returns one similarity per image, [B] float64; 1 means identical:

- :func:`spearman`: Spearman rank correlation of the pixels (average ranks for ties, as ``scipy.stats.spearmanr``);
  NaN when a map is constant (no ranking);
- :func:`ssim`: structural similarity with a 7 x 7 uniform window, sample covariance, the window's valid
  positions only and the data range of the two maps together (``skimage.metrics.structural_similarity`` as
  Quantus calls it);
- :func:`hog_similarity`: Pearson correlation of the two maps' histograms of oriented gradients (9 unsigned
  orientations, 8 x 8-pixel cells, 3 x 3-cell blocks, L2-Hys: ``skimage.feature.hog``'s defaults); NaN when a
  map has no gradient.

tests/test_sanity.py checks them against Quantus 0.6 and scikit-image on random maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tame.errors import TameError


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.dim() != 3 or a.shape != b.shape:
        raise TameError(f"expected two maps [B, H, W] of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x, y [B, N] -> [B] Pearson correlation (NaN when a row is constant)."""
    x = x - x.mean(dim=1, keepdim=True)
    y = y - y.mean(dim=1, keepdim=True)
    return (x * y).sum(dim=1) / (x.norm(dim=1) * y.norm(dim=1))


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """values [B, N] -> [B, N] float64 ranks 0..N-1, ties sharing the mean of their ranks."""
    ordered, order = values.sort(dim=1, stable=True)
    starts = torch.ones_like(ordered, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    group = starts.long().cumsum(dim=1) - 1  # [B, N], the tie group of each sorted position
    position = torch.arange(values.shape[1], dtype=torch.float64, device=values.device).expand_as(group)
    total = torch.zeros_like(position).scatter_add_(1, group, position)
    count = torch.zeros_like(position).scatter_add_(1, group, torch.ones_like(position))
    mean = total.gather(1, group) / count.gather(1, group)  # [B, N], in sorted order
    return torch.empty_like(mean).scatter_(1, order, mean)


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a, b [B, H, W] -> [B]: Spearman rank correlation of the pixels."""
    _check(a, b)
    return _pearson(average_ranks(a.flatten(1).double()), average_ranks(b.flatten(1).double()))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """a, b [B, H, W] -> [B]: mean SSIM over the valid ``window`` x ``window`` positions (H, W >= window)."""
    _check(a, b)
    a, b = a.double().unsqueeze(1), b.double().unsqueeze(1)  # [B, 1, H, W]
    both = torch.cat([a, b], dim=1).flatten(1)
    data_range = both.max(dim=1).values - both.min(dim=1).values  # [B]
    c1 = ((0.01 * data_range) ** 2).view(-1, 1, 1, 1)
    c2 = ((0.03 * data_range) ** 2).view(-1, 1, 1, 1)
    n = window * window
    mean_a, mean_b = F.avg_pool2d(a, window, stride=1), F.avg_pool2d(b, window, stride=1)  # [B, 1, h, w]
    scale = n / (n - 1)  # sample covariance
    var_a = scale * (F.avg_pool2d(a * a, window, stride=1) - mean_a**2)
    var_b = scale * (F.avg_pool2d(b * b, window, stride=1) - mean_b**2)
    cov = scale * (F.avg_pool2d(a * b, window, stride=1) - mean_a * mean_b)
    numerator = (2 * mean_a * mean_b + c1) * (2 * cov + c2)
    denominator = (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    return (numerator / denominator).flatten(1).mean(dim=1)


def hog(maps: torch.Tensor, orientations: int = 9, cell: int = 8, block: int = 3) -> torch.Tensor:
    """maps [B, H, W] -> [B, F]: histograms of oriented gradients, block-normalised with L2-Hys (F = blocks x
    block^2 x orientations; H, W >= block x cell)."""
    maps = maps.double()
    gy, gx = torch.zeros_like(maps), torch.zeros_like(maps)  # [B, H, W], central differences, 0 on the border
    gy[:, 1:-1] = maps[:, 2:] - maps[:, :-2]
    gx[:, :, 1:-1] = maps[:, :, 2:] - maps[:, :, :-2]
    magnitude = torch.hypot(gx, gy)
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180  # unsigned orientation in [0, 180)
    width = 180 / orientations
    histograms = []
    for k in range(orientations):  # a pixel counts in the bin its orientation falls in, by its magnitude
        inside = (angle >= k * width) & (angle < (k + 1) * width)
        histograms.append(F.avg_pool2d((magnitude * inside).unsqueeze(1), cell))  # [B, 1, cells_y, cells_x]
    cells = torch.cat(histograms, dim=1)  # [B, O, cy, cx]
    blocks = cells.unfold(2, block, 1).unfold(3, block, 1)  # [B, O, by, bx, block, block]
    blocks = blocks.permute(0, 2, 3, 4, 5, 1).flatten(3)  # [B, by, bx, block * block * O]
    eps = 1e-5
    blocks = blocks / torch.sqrt((blocks**2).sum(dim=3, keepdim=True) + eps**2)
    blocks = blocks.clamp(max=0.2)
    blocks = blocks / torch.sqrt((blocks**2).sum(dim=3, keepdim=True) + eps**2)
    return blocks.flatten(1)


def hog_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a, b [B, H, W] -> [B]: Pearson correlation of their :func:`hog` features."""
    _check(a, b)
    return _pearson(hog(a), hog(b))


SIMILARITIES = {"spearman": spearman, "ssim": ssim, "hog": hog_similarity}  # the sanity checks' measures


def nan_mean(values: torch.Tensor) -> float:
    """The mean of the finite values (NaN when there are none)."""
    finite = values[torch.isfinite(values)]
    return finite.mean().item() if finite.numel() else math.nan
