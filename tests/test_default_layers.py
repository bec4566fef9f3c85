"""Default layers: three stage outputs at strides 8/16/32 (timm's feature_info where present), never padding,
identity or activation modules; ViTs get blocks at 1/2, 3/4 and the end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm

from tame.models import create_classifier
from tame.models.inspect import default_layers, feature_layers
from tame.models.registry import Classifier

ROOT = Path(__file__).resolve().parents[1]
SIZE = 64  # strides 8/16/32 -> 8, 4, 2 px


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("resnet50", ["layer2", "layer3", "layer4"]),
        ("vgg16", ["features.16", "features.23", "features.30"]),  # TAME's VGG layers (pooled stage outputs)
        ("convnext_tiny", ["stages.1", "stages.2", "stages.3"]),
        ("efficientnet_b0", ["blocks.2", "blocks.4", "blocks.6"]),
        ("torchvision.models:resnet50", ["layer2", "layer3", "layer4"]),
        ("torchvision.models:vgg16", ["features.16", "features.23", "features.30"]),
        ("torchvision.models:efficientnet_b0", ["features.3", "features.5", "features.8"]),
    ],
)
def test_cnn_stage_outputs(name, expected):
    layers = feature_layers(create_classifier(name, pretrained=False), SIZE)
    chosen = default_layers(layers)
    assert chosen == expected
    by_name = {info.name: info for info in layers}
    assert [by_name[n].shape[1] for n in chosen] == [SIZE // 8, SIZE // 16, SIZE // 32]


def test_vit_base_blocks():
    net = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=32, depth=4)
    layers = feature_layers(Classifier(net, "vit_base", (0.5,) * 3, (0.5,) * 3), 32)
    assert default_layers(layers) == ["blocks.2", "blocks.3"]  # 1/2 -> 2, 3/4 -> 3, the end -> 3


def test_efficientnet_lite0_stage_outputs_not_padding():
    """The package's EfficientNet-Lite0 (static-padding modules in every block): 28², 14², 7² at 224 px."""
    pytest.importorskip("efficientnet_lite_pytorch")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "tame.cli", "inspect", "examples.efficientnet_lite0:build"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    marked = [line.split()[1:5] for line in result.stdout.splitlines() if line.startswith("*")]
    assert marked == [
        ["_blocks.4", "40", "x", "28"],
        ["_blocks.10", "112", "x", "14"],
        ["_blocks.15", "320", "x", "7"],
    ]
    assert "default layers: _blocks.4 _blocks.10 _blocks.15" in result.stdout
