"""Each model's own preprocessing: resolution order, the warning, config auto values, checkpoints, interpolation,
and T-TAME's class-weighted token transform."""

from __future__ import annotations

import logging

import pytest
import timm
import torch
from torch import nn

from tame.config import load_config
from tame.data.images import eval_image
from tame.errors import TameError
from tame.models import TameModel, create_classifier
from tame.models.preprocessing import Preprocessing, resolve_preprocessing
from tame.models.registry import build_classifier
from tame.models.taps import FeatureTaps, tokens_to_map

CPU = torch.device("cpu")


def _net(pretrained_cfg: dict | None = None) -> nn.Module:
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    if pretrained_cfg is not None:
        net.pretrained_cfg = pretrained_cfg
    return net


def test_timm_pretrained_cfg_gives_sizes_and_normalisation():
    """ViT-B/16 augreg: crop_pct 0.9 -> resize floor(224 / 0.9) = 248, bicubic, mean = std = 0.5."""
    cfg = timm.models.get_pretrained_cfg("vit_base_patch16_224.augreg_in21k_ft_in1k").to_dict()
    resolved, missing = resolve_preprocessing(_net(cfg), "vit")
    assert resolved == Preprocessing((0.5,) * 3, (0.5,) * 3, 248, 224, "bicubic") and missing == []
    tv = timm.models.get_pretrained_cfg("resnet50.tv_in1k").to_dict()
    assert resolve_preprocessing(_net(tv), "r50")[0] == Preprocessing(
        (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 256, 224, "bilinear"
    )


def test_module_without_pretrained_cfg_warns_naming_the_keys(caplog):
    with caplog.at_level(logging.WARNING, logger="tame.models.preprocessing"):
        resolved, missing = resolve_preprocessing(_net(), "mine:build")
    assert resolved == Preprocessing((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 256, 224, "bilinear")
    assert missing == ["mean", "std", "resize", "crop", "interpolation"]
    (record,) = caplog.records
    message = record.getMessage()
    assert "mine:build" in message and "\n" not in message
    for key in ("model.mean", "model.std", "data.resize", "data.crop", "data.interpolation", "pretrained_cfg"):
        assert key in message


def test_explicit_values_win_and_silence_the_warning(caplog):
    given = {"mean": (0.5,) * 3, "std": (0.25,) * 3, "resize": 40, "crop": 32, "interpolation": "bicubic"}
    with caplog.at_level(logging.WARNING):
        resolved, missing = resolve_preprocessing(_net({"mean": (0.1,) * 3, "crop_pct": 0.5}), "x", given)
    assert resolved == Preprocessing((0.5,) * 3, (0.25,) * 3, 40, 32, "bicubic") and not caplog.records
    # a crop set alone keeps the model's crop_pct: resize = floor(32 / 0.5)
    assert resolve_preprocessing(_net({"crop_pct": 0.5}), "x", {"crop": 32})[0].resize == 64
    with pytest.raises(TameError, match="interpolation: 'nearest' is not one of bilinear, bicubic"):
        resolve_preprocessing(_net(), "x", {"interpolation": "nearest"})


def test_module_function_builder_warns_once(caplog):
    with caplog.at_level(logging.WARNING):
        classifier = create_classifier("torchvision.models:resnet18", pretrained=False)
    assert len(caplog.records) == 1 and "torchvision.models:resnet18 sets no mean/std" in caplog.text
    assert classifier.preprocessing.mean == (0.485, 0.456, 0.406)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        create_classifier("torchvision.models:resnet18", pretrained=False, mean=[0.5] * 3, std=[0.5] * 3)
    assert not caplog.records


def test_config_auto_values_come_from_model_then_checkpoint(tmp_path):
    cfg = load_config(None, ["model.name=test_resnet", "model.pretrained=false", "data.resize=auto"])
    assert (cfg.data.resize, cfg.data.crop, cfg.data.interpolation, cfg.model.mean) == (None, None, None, None)
    own = create_classifier("test_resnet", pretrained=False).preprocessing
    resolved, classifier = build_classifier(cfg)
    assert classifier.preprocessing == own  # the classifier the config was resolved from, to pass on
    assert (resolved.data.resize, resolved.data.crop, resolved.data.interpolation) == (168, 160, "bilinear")
    assert tuple(resolved.model.mean) == own.mean == (0.5, 0.5, 0.5)  # timm's test_resnet: crop_pct 0.95
    # a checkpoint's saved preprocessing wins over the model's, an explicit config value over both
    model = TameModel.from_config(load_config(None, ["model.name=test_resnet", "model.pretrained=false"]).model, 48)
    model.save_attention(tmp_path / "am.pt")
    saved = torch.load(tmp_path / "am.pt", weights_only=True)["meta"]["preprocessing"]
    assert saved == {**own.as_dict(), "crop": 48, "resize": 50}  # floor(48 / 0.95)
    from_checkpoint, _ = build_classifier(cfg, tmp_path / "am.pt")
    assert (from_checkpoint.data.resize, from_checkpoint.data.crop) == (50, 48)
    explicit_cfg = load_config(None, ["model.name=test_resnet", "model.pretrained=false", "data.crop=40"])
    explicit, _ = build_classifier(explicit_cfg, tmp_path / "am.pt")
    assert (explicit.data.resize, explicit.data.crop) == (50, 40)


def test_config_rejects_unknown_interpolation():
    with pytest.raises(TameError, match="data.interpolation"):
        load_config(None, ["data.interpolation=nearest"])


def test_eval_image_honours_interpolation(example_images):
    path = example_images / "409_aclock.JPEG"
    bilinear = eval_image(path, 256, 224, True, "bilinear")
    bicubic = eval_image(path, 256, 224, True, "bicubic")
    assert bilinear.shape == bicubic.shape == (3, 224, 224)
    assert 0 < (bilinear - bicubic).abs().mean() < 0.02


@pytest.mark.parametrize("backend", ["torch", "dali"])
def test_loaders_honour_interpolation(example_images, tmp_path, backend):
    from tame.config import DataConfig
    from tame.data import build_loader
    from tame.data.dali import dali_available
    from tame.distributed import Dist

    if backend == "dali" and not dali_available(cpu_only=True):
        pytest.skip("DALI cannot run CPU-only here")
    root = example_images
    (tmp_path / "list.txt").write_text("409_aclock.JPEG 409\n232.JPEG 232\n")
    batches = {}
    for interpolation in ("bilinear", "bicubic"):
        cfg = DataConfig(backend=backend, batch_size=2, workers=0, resize=256, crop=224, interpolation=interpolation)
        (images, _), *_ = list(build_loader(cfg, tmp_path / "list.txt", root, train=False, dist=Dist.local()))
        batches[interpolation] = images
        names = ("409_aclock.JPEG", "232.JPEG")
        expected = torch.stack([eval_image(root / n, 256, 224, True, interpolation) for n in names])
        assert (images - expected).abs().mean() < 0.002
    assert (batches["bilinear"] - batches["bicubic"]).abs().mean() > 1e-4


def test_class_weighted_tokens():
    """T-TAME: patch tokens multiplied channel-wise by the class token, then reshaped like the plain transform."""
    tokens = torch.randn(2, 1 + 6, 5)  # [B, N, D], one class token, a 2x3 grid
    plain = tokens_to_map(tokens, 1, (20, 30))
    weighted = tokens_to_map(tokens, 1, (20, 30), transform="class_weighted")
    assert weighted.shape == plain.shape == (2, 5, 2, 3)
    assert torch.allclose(weighted, plain * tokens[:, 0].view(2, 5, 1, 1))
    with pytest.raises(TameError, match="needs a class token"):
        tokens_to_map(tokens, 0, (1, 7), transform="class_weighted")


def test_class_weighted_vit_explains():
    torch.manual_seed(0)
    net = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=7)
    from tame.models.registry import Classifier

    classifier = Classifier(net, "vit_tiny", (0.5,) * 3, (0.5,) * 3)
    model = TameModel(classifier, ["blocks.10", "blocks.11"], input_size=32, token_transform="class_weighted")
    images = torch.rand(2, 3, 32, 32)
    assert model.attention_meta()["token_transform"] == "class_weighted"
    logits, features = model.features(images)
    with FeatureTaps(net, ["blocks.11"], 1) as taps:
        taps.begin((32, 32))
        net(classifier.normalise(images))
        (plain,) = taps.collect()
    assert features[1].shape == plain.shape == (2, 192, 2, 2)
    assert not torch.allclose(features[1], plain)
    loss = model.training_step(images)["loss"]
    loss.backward()
    model.eval()
    assert model.explain(images).maps.shape == (2, 32, 32)
    with pytest.raises(TameError, match="token_transform"):
        load_config(None, ["model.token_transform=mean"])


def test_commands_build_the_classifier_once(tmp_path, monkeypatch):
    """`tame explain` and `tame train --check` resolve the config from the classifier they then use: one build."""
    from PIL import Image

    from tame.cli import main
    from tame.models import registry

    built = []
    create = registry.create_classifier
    monkeypatch.setattr(registry, "create_classifier", lambda *a, **k: built.append(a[0]) or create(*a, **k))
    Image.new("RGB", (80, 70), (200, 40, 90)).save(tmp_path / "red.png")
    image, model = str(tmp_path / "red.png"), ["--model", "test_resnet", "--layers", "layer3", "layer4"]
    argv = ["explain", image, "model.pretrained=false", *model, "--method", "gradcam", "--out", str(tmp_path / "out")]
    assert main([*argv, "--device", "cpu"]) == 0
    assert built == ["test_resnet"]
    assert (tmp_path / "out" / "index.html").is_file()
