"""Class sensitivity: is a class's map on *that class's* object when the image holds objects of other classes too?

AD/IC, ROAD and the pointing game all explain the one class an image contains, so a map that says "an object is
here" scores as well as one that says "this class is here". Class sensitivity builds composites of T images of
different classes (T = 2: side by side; T = 4: a 2 x 2 grid, each image at its full size), explains every one of
the T classes on the composite, and asks where each class's map falls:

- mass share: the share of the map's total mass inside the class's own tile (the energy-based pointing game with
  the tile as the region);
- peak: whether the map's maximum (first in raster order) lies in the class's own tile;
- on its own object: the peak is in its own tile *and* its own tile holds more of the map's mass than any other;
- selective composite: every one of its T classes' maps is on its own object.

Chance for a selective composite is about 1 / T^T for maps that ignore the class (50 % per class for T = 2, so
~25 %), and 0-50 % for maps that always mark the same object. The functions here are pure tensor functions; the
protocol (which images, which classes) is :mod:`tame.evaluation.class_sensitivity`'s.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from tame.errors import TameError

TILES = (2, 4)  # images per composite


def tile_grid(tiles: int) -> tuple[int, int]:
    """Rows and columns of a composite of ``tiles`` images: 2 -> (1, 2), 4 -> (2, 2)."""
    if tiles not in TILES:
        raise TameError(f"a composite holds 2 or 4 images, got {tiles}")
    return (1, 2) if tiles == 2 else (2, 2)


def compose(images: torch.Tensor) -> torch.Tensor:
    """images [N, T, C, h, w] -> composites [N, C, rows * h, cols * w]: tile t at row t // cols, column t % cols
    (T = 2: left, right; T = 4: top-left, top-right, bottom-left, bottom-right)."""
    n, tiles, channels, height, width = images.shape
    rows, cols = tile_grid(tiles)
    grid = images.view(n, rows, cols, channels, height, width)
    return grid.permute(0, 3, 1, 4, 2, 5).reshape(n, channels, rows * height, cols * width)


def tile_regions(tiles: int, height: int, width: int) -> torch.Tensor:
    """bool [T, H, W]: tile t's pixels in a composite of size H x W (H, W divisible by the grid's rows, cols)."""
    rows, cols = tile_grid(tiles)
    if height % rows or width % cols:
        raise TameError(f"a {height} x {width} composite does not split into {rows} x {cols} tiles")
    tile = torch.arange(rows).repeat_interleave(height // rows).view(-1, 1) * cols  # [H, 1]
    tile = tile + torch.arange(cols).repeat_interleave(width // cols).view(1, -1)  # [H, W], tile index per pixel
    return tile.unsqueeze(0) == torch.arange(tiles).view(-1, 1, 1)


class Sensitivity(NamedTuple):
    """Per composite and class slot (slot t: the class of tile t): mass share, peak and "on its own object"."""

    own_mass: torch.Tensor  # [N, T] float64 in [0, 1]: share of slot t's map mass in tile t (0 for an all-zero map)
    peak_own: torch.Tensor  # [N, T] bool: slot t's map peaks in tile t
    on_own: torch.Tensor  # [N, T] bool: peak in tile t and tile t holds more mass than every other tile

    @property
    def selective(self) -> torch.Tensor:
        """[N] bool: every class's map of the composite is on its own object."""
        return self.on_own.all(dim=1)


def class_sensitivity(maps: torch.Tensor, regions: torch.Tensor) -> Sensitivity:
    """maps [N, T, H, W] (non-negative; maps[:, t] explains tile t's class), regions bool [T, H, W] (the tiles,
    :func:`tile_regions`) -> :class:`Sensitivity`.

    An all-zero map has mass share 0 and is on no object (its peak, pixel 0, still counts for ``peak_own``)."""
    if maps.dim() != 4 or regions.dim() != 3 or maps.shape[1:] != regions.shape:
        raise TameError(
            f"expected maps [N, T, H, W] and tile regions [T, H, W], got {tuple(maps.shape)} and {tuple(regions.shape)}"
        )
    n, tiles = maps.shape[:2]
    flat = maps.flatten(2).double()  # [N, T, H*W]
    inside = torch.einsum("ntp,rp->ntr", flat, regions.flatten(1).double())  # [N, T (map), T (tile)]: mass in tile
    total = flat.sum(dim=2, keepdim=True)  # [N, T, 1]
    share = torch.where(total > 0, inside / torch.where(total > 0, total, torch.ones_like(total)), 0.0)
    slots = torch.arange(tiles, device=maps.device)
    own_mass = share[:, slots, slots]  # [N, T]
    peak = flat.argmax(dim=2)  # [N, T], first maximum in raster order
    peak_tile = regions.flatten(1).to(maps.device).long().argmax(dim=0)[peak]  # [N, T]: the tile holding the peak
    others = share.masked_fill(torch.eye(tiles, dtype=torch.bool, device=maps.device), -1.0)  # [N, T, T]
    most = own_mass > others.max(dim=2).values  # [N, T]: own tile strictly holds the most mass
    peak_own = peak_tile == slots
    return Sensitivity(own_mass, peak_own, peak_own & most & (total[..., 0] > 0))
