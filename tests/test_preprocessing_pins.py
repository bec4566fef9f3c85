"""Pinned numbers: the resolved preprocessing (mean, std, resize, crop, interpolation) of every config in configs/
and of timm models built without weights, and the ImageNet fallbacks. Written before the preprocessing defaults
moved to one home (issue 22): any change here changes what a model sees."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tame.config import load_config
from tame.models import create_classifier
from tame.models.preprocessing import Preprocessing, default_resize
from tame.models.registry import build_classifier

ROOT = Path(__file__).resolve().parents[1]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5,) * 3, (0.5,) * 3)
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))

CONFIGS = {
    "demo.yaml": (*IMAGENET, 64, 64, "bilinear"),
    "efficientnet_lite0.yaml": (*HALF, 256, 224, "bicubic"),
    "resnet50.yaml": (*IMAGENET, 256, 224, "bilinear"),
    "synthetic.yaml": (*IMAGENET, 72, 64, "bilinear"),
    "vgg16.yaml": (*IMAGENET, 256, 224, "bilinear"),
    "vit_b_16.yaml": (*HALF, 248, 224, "bicubic"),
    # the family's published recipes (T-TAME, L-CAM-Img, P-TAME): torchvision's 256/224 bilinear, ImageNet mean/std
    "resnet50_lcam_img.yaml": (*IMAGENET, 256, 224, "bilinear"),
    "vgg16_lcam_img.yaml": (*IMAGENET, 256, 224, "bilinear"),
    "vit_b_16_ttame.yaml": (*IMAGENET, 256, 224, "bilinear"),
    "resnet50_ptame.yaml": (*IMAGENET, 256, 224, "bilinear"),
    "vgg16_ptame.yaml": (*IMAGENET, 256, 224, "bilinear"),
    "vit_b_16_ptame.yaml": (*IMAGENET, 256, 224, "bilinear"),
    "synthetic_ptame.yaml": (*HALF, 72, 64, "bilinear"),  # a timm ViT at 64 px: its own mean/std
}
MODELS = {
    "resnet50.tv_in1k": (*IMAGENET, 256, 224, "bilinear"),
    "resnet50": (*IMAGENET, 235, 224, "bicubic"),
    "vit_base_patch16_224.augreg_in21k_ft_in1k": (*HALF, 248, 224, "bicubic"),
    "vgg16.tv_in1k": (*IMAGENET, 256, 224, "bilinear"),
    "convnext_tiny": (*IMAGENET, 235, 224, "bicubic"),
    "efficientnet_b0": (*IMAGENET, 256, 224, "bicubic"),
    "inception_v3": (*HALF, 341, 299, "bicubic"),
    "deit_tiny_patch16_224": (*IMAGENET, 248, 224, "bicubic"),
    "test_resnet": (*HALF, 168, 160, "bilinear"),
    "mobilenetv3_large_100": (*IMAGENET, 256, 224, "bicubic"),
    "eva02_tiny_patch14_336": (*CLIP, 336, 336, "bicubic"),
    "torchvision.models:resnet18": (*IMAGENET, 256, 224, "bilinear"),  # no pretrained_cfg: ImageNet's
}
PARTIAL = [  # (model, given values) -> resolved
    ("resnet50.tv_in1k", {"crop": 64}, (*IMAGENET, 73, 64, "bilinear")),
    ("vit_base_patch16_224.augreg_in21k_ft_in1k", {"crop": 96}, (*HALF, 106, 96, "bicubic")),
    ("torchvision.models:resnet18", {"crop": 64}, (*IMAGENET, 73, 64, "bilinear")),
    ("inception_v3", {"resize": 320}, (*HALF, 320, 299, "bicubic")),
    ("convnext_tiny", {"interpolation": "bilinear", "mean": HALF[0]}, (HALF[0], IMAGENET[1], 235, 224, "bilinear")),
]


@pytest.fixture(autouse=True)
def repo_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # examples/ is importable as it is with PYTHONPATH=.


def _values(p: Preprocessing) -> tuple:
    return (tuple(p.mean), tuple(p.std), p.resize, p.crop, p.interpolation)


def resolved_config(path: Path) -> tuple:
    """A config's resolved preprocessing, its classifier built without weights (on the meta device: no init cost)."""
    with torch.device("meta"):
        cfg, _ = build_classifier(load_config(path, ["model.pretrained=false", "model.weights=null"]))
    return (tuple(cfg.model.mean), tuple(cfg.model.std), cfg.data.resize, cfg.data.crop, cfg.data.interpolation)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_configs_resolve_to_pinned_preprocessing(name):
    if name == "efficientnet_lite0.yaml":
        pytest.importorskip("efficientnet_lite_pytorch")
    assert resolved_config(ROOT / "configs" / name) == CONFIGS[name]


def test_every_config_is_pinned():
    assert sorted(path.name for path in (ROOT / "configs").glob("*.yaml")) == sorted(CONFIGS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_resolve_to_pinned_preprocessing(name):
    with torch.device("meta"):
        classifier = create_classifier(name, pretrained=False)
    assert _values(classifier.preprocessing) == MODELS[name]


@pytest.mark.parametrize(("name", "given", "expected"), PARTIAL)
def test_given_values_over_the_models_over_imagenets(name, given, expected):
    with torch.device("meta"):
        classifier = create_classifier(name, pretrained=False, preprocessing=given)
    assert _values(classifier.preprocessing) == expected


def test_classifier_without_preprocessing_uses_imagenets_sizes():
    from tame.models.registry import Classifier

    classifier = Classifier(torch.nn.Identity(), "x", HALF[0], HALF[1])
    assert _values(classifier.preprocessing) == (*HALF, 256, 224, "bilinear")


def test_sizes_given_over_a_models_own():
    """A crop given without a resize keeps the model's resize / crop ratio: ImageNet's default_resize for 256 / 224
    (what export used before it took the model's)."""
    sizes = [Preprocessing(*IMAGENET, 256, 224, "bilinear").with_sizes(crop=size).resize for size in (32, 64, 160)]
    assert sizes == [36, 73, 182] == [default_resize(size) for size in (32, 64, 160)]
    own = Preprocessing(*HALF, 72, 64, "bicubic")
    assert _values(own.with_sizes()) == _values(own) and _values(own.with_sizes(96)) == (*HALF, 96, 64, "bicubic")
    assert [default_resize(size) for size in (32, 64, 160, 224, 384)] == [36, 73, 182, 256, 438]
    assert all(default_resize(size) == size * 8 // 7 for size in range(1, 4097))  # the formula export used before
