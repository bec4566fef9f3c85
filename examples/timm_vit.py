"""A small timm ViT at 64 px for P-TAME runs on the synthetic set (random weights, CPU).

    PYTHONPATH=. tame train --config configs/synthetic_ptame.yaml      (README, "When to use which")

timm's ``vit_tiny_patch16_224`` built for 64 px images (a 4x4 grid of 16 px patches): P-TAME reads an auxiliary
network's features, so no layer of this model is named anywhere.
"""

from __future__ import annotations

import timm
from torch import nn


def tiny(pretrained: bool = False, num_classes: int = 1000, img_size: int = 64) -> nn.Module:
    """timm's ``vit_tiny_patch16_224`` at ``img_size`` (pretrained: timm's weights, position embeddings resampled)."""
    return timm.create_model("vit_tiny_patch16_224", pretrained=pretrained, num_classes=num_classes, img_size=img_size)
