"""Explanation maps and the inputs they are made from: image and class checks, per-image min-max normalisation,
the resize to the image (docs/METHOD.md, "Explanation map"); shared by TameModel, the baselines and the export graph."""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch
import torch.nn.functional as F

from tame.errors import TameError

logger = logging.getLogger(__name__)


class Explanation(NamedTuple):
    maps: torch.Tensor  # [B, H, W] in [0, 1]
    classes: torch.Tensor  # long [B], the explained class of each image
    logits: torch.Tensor  # [B, K], the classifier's logits for the unmasked images


def check_images(images: torch.Tensor) -> None:
    """Images must be float [B, 3, H, W] with values in [0, 1]."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise TameError(f"images must be a tensor [B, 3, H, W], got {shape}")
    if not images.is_floating_point():
        raise TameError(f"images must be float in [0, 1], got dtype {images.dtype}")
    low, high = torch.aminmax(images)
    if low < 0 or high > 1:
        raise TameError(f"image values must lie in [0, 1] (un-normalised), got [{low.item():.3g}, {high.item():.3g}]")


def per_image(classes: torch.Tensor | int, batch: int) -> torch.Tensor:
    """One int or long [B] -> long [B]; any other shape is a TameError."""
    classes = torch.as_tensor(classes, dtype=torch.long)
    if classes.dim() == 0:
        classes = classes.expand(batch)
    if classes.shape != (batch,):
        raise TameError(f"classes must be one int or one per image ({batch}), got {tuple(classes.shape)}")
    return classes


def resolve_classes(classes: torch.Tensor | int | None, logits: torch.Tensor) -> torch.Tensor:
    """The explained class per image: the prediction (``None``), one int for all, or long [B]; checked against
    the logits [B, K]."""
    if classes is None:
        return logits.argmax(dim=1)
    classes = per_image(classes, logits.shape[0]).to(logits.device)
    if classes.numel() and (classes.min() < 0 or classes.max() >= logits.shape[1]):
        raise TameError(f"class index out of range 0..{logits.shape[1] - 1}: {classes.tolist()}")
    return classes


MIN_MAP_SIDE = 2  # a 1x1 map is one value: min-max normalised, it is all zeros (AD 0 / IC 100 from nothing)
COARSE_MAP_SIDE = 4  # below this the map is still usable, but coarse: said once, as a warning


def check_map_size(layer: str, size: tuple[int, ...], input_size: int) -> None:
    """Refuse explanation maps of fewer than ``MIN_MAP_SIDE`` cells a side (the AM's maps have the size of the
    first layer's features), warn below ``COARSE_MAP_SIDE``."""
    height, width = size
    advice = f"name an earlier layer first in model.layers, or raise data.crop (now {input_size} px)"
    if min(height, width) < MIN_MAP_SIDE:
        raise TameError(
            f"layer {layer} gives {height}x{width} feature maps at {input_size} px: an explanation map needs at "
            f"least {MIN_MAP_SIDE}x{MIN_MAP_SIDE} (a 1x1 map is constant, so every map would be blank); {advice}"
        )
    if min(height, width) < COARSE_MAP_SIDE:
        logger.warning("layer %s gives only %dx%d feature maps: coarse explanations (%s)", layer, height, width, advice)


def min_max_normalise(maps: torch.Tensor) -> torch.Tensor:
    """maps: [B, ...] -> (maps - min) / (max - min) per image; a constant map becomes 0.

    A map with a NaN stays NaN (``span * 0``), and one with an infinity gets NaNs: never a clean-looking map from
    broken weights (the evaluation refuses non-finite maps).
    """
    flat = maps.flatten(1)
    low = flat.min(dim=1).values.view(-1, *[1] * (maps.dim() - 1))
    high = flat.max(dim=1).values.view(-1, *[1] * (maps.dim() - 1))
    span = high - low
    return torch.where(span > 0, (maps - low) / torch.where(span > 0, span, torch.ones_like(span)), span * 0)


def explanation_maps(class_maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """class_maps: pre-sigmoid c [B, 1, h, w] -> min-max normalised, bilinearly resized: [B, H, W] in [0, 1]."""
    normalised = min_max_normalise(class_maps.float())
    return F.interpolate(normalised, size=size, mode="bilinear", align_corners=False)[:, 0]
