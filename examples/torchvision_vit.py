"""A small torchvision ``VisionTransformer`` for runs on the synthetic set (64 px, random weights, CPU).

    PYTHONPATH=. tame-inspect examples.torchvision_vit:tiny --input-size 64
    PYTHONPATH=. tame train --config configs/vit_b_16_ttame.yaml model.name=examples.torchvision_vit:tiny \\
        model.pretrained=false model.num_classes=6 model.layers="[encoder.layers.encoder_layer_1.ln_1, \\
        encoder.layers.encoder_layer_2.ln_1, encoder.layers.encoder_layer_3.ln_1]" ...   (README, "The TAME family")

The same class as ``torchvision.models.vit_b_16`` (class token at index 0 of the sequence, blocks
``encoder.layers.encoder_layer_N`` with ``ln_1`` before the attention), smaller: 4 blocks of width 64 on 8x8
patches, so a 64 px image is an 8x8 grid of patch tokens.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import VisionTransformer


def tiny(pretrained: bool = False, num_classes: int = 1000, image_size: int = 64) -> VisionTransformer:
    """A 4-block ViT with random weights (``pretrained`` must be false: there are none); the head is drawn at random
    too, so that a run on it sees logits that depend on the image."""
    if pretrained:
        raise ValueError("examples.torchvision_vit:tiny has no pretrained weights; set model.pretrained=false")
    net = VisionTransformer(
        image_size=image_size,
        patch_size=8,
        num_layers=4,
        num_heads=2,
        hidden_dim=64,
        mlp_dim=128,
        num_classes=num_classes,
    )
    nn.init.normal_(net.heads.head.weight, std=0.5)  # torchvision zero-initialises the head: every image alike
    return net
