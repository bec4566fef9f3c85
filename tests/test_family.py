"""The TAME family: L-CAM-Img's every formula by hand, the version registry, token maps of any transformer, the
recipe options (mask space, bias LR factor and weight decay, L-CAM's epoch decay) and the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from tame.config import load_config
from tame.engine.optim import build_training_optimizer, set_lr
from tame.errors import TameError
from tame.models import Classifier, TameModel, get_version, list_attention_versions
from tame.models.inspect import feature_layers
from tame.models.registry import model_prefix_tokens

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)


class TinyCnn(nn.Module):
    """body: [B, 3, 8, 8] -> [B, 4, 2, 2]; head: pooled -> 3 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(4))
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def _lcam(label_source: str = "list") -> TameModel:
    torch.manual_seed(0)
    classifier = Classifier(TinyCnn(), "tiny_cnn", MEAN, STD)
    return TameModel(classifier, ["body"], "L-CAM-Img", input_size=8, label_source=label_source)


def test_lcam_img_head_is_one_1x1_convolution_with_bias():
    model = _lcam()
    assert {k: tuple(v.shape) for k, v in model.attention.state_dict().items()} == {
        "fuser.weight": (3, 4, 1, 1),
        "fuser.bias": (3,),
    }
    assert model.attention.size == (2, 2) and model.mask_space == "pixels"
    features = torch.randn(2, 4, 2, 2)
    weight, bias = model.attention.fuser.weight[:, :, 0, 0], model.attention.fuser.bias
    by_hand = torch.einsum("kc,bchw->bkhw", weight, features) + bias.view(1, 3, 1, 1)  # c = W F + b
    torch.testing.assert_close(model.attention([features]), by_hand)


def test_lcam_img_training_step_every_formula_by_hand():
    model = _lcam().train()
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([2, 0])
    out = model.training_step(images, labels)

    net, fuser = model.classifier.net, model.attention.fuser
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    with torch.no_grad():
        features = net.body((images - mean) / std)  # [2, 4, 2, 2]
        a = torch.sigmoid(F.conv2d(features, fuser.weight, fuser.bias))  # [2, 3, 2, 2]: sigmoid(1x1 conv + bias)
        regulariser = a[:, labels]  # the batch's labels' maps on every image: [2, 2, 2, 2]
        masks = a[torch.arange(2), labels].unsqueeze(1)  # each image's own label: [2, 1, 2, 2]
        upsampled = F.interpolate(masks, size=(8, 8), mode="bilinear", align_corners=False)
        logits = net((upsampled * images - mean) / std)  # the mask multiplies the image in [0, 1], then normalise
        ce = F.cross_entropy(logits, labels)
    values = regulariser.flatten().tolist()
    area = sum((v + 0.0005) ** 0.3 for v in values) / len(values)
    smooth = 0.0
    for image in regulariser:
        for m in image:  # one 2x2 map [[p, q], [r, s]]: 2 vertical, 2 horizontal pairs; every cell is on 2 borders
            (p, q), (r, s) = m.tolist()
            smooth += (r - p) ** 2 + (s - q) ** 2 + (q - p) ** 2 + (s - r) ** 2
            smooth += 0.3 * 2 * (p**2 + q**2 + r**2 + s**2)
    smooth /= 2 * 2  # power * batch
    assert out["ce"].item() == pytest.approx(ce.item(), rel=1e-5)
    assert out["area"].item() == pytest.approx(area, rel=1e-5)
    assert out["var"].item() == pytest.approx(smooth, rel=1e-5)
    assert out["loss"].item() == pytest.approx(1.5 * ce.item() + 2 * area + 0.01 * smooth, rel=1e-5)


def test_lcam_img_explains_like_tame():
    model = _lcam().eval()
    images = torch.rand(3, 3, 8, 8)
    explanation = model.explain(images, 1)
    assert explanation.maps.shape == (3, 8, 8) and explanation.maps.min() >= 0 and explanation.maps.max() <= 1


def test_versions_list_head_mask_space_loss_and_layer_count():
    assert {"TAME", "L-CAM-Img"} <= set(list_attention_versions())
    tame, lcam = get_version("TAME"), get_version("L-CAM-Img")
    assert (tame.mask_space, tame.layers, lcam.mask_space, lcam.layers) == ("pixels", None, "pixels", 1)
    assert (lcam.loss.ce, lcam.loss.area, lcam.loss.variation, lcam.loss.area_power) == (1.5, 2.0, 0.01, 0.3)
    classifier = Classifier(TinyCnn(), "tiny_cnn", MEAN, STD)
    with pytest.raises(TameError, match="takes 1 layer"):
        TameModel(classifier, ["body.0", "body"], "L-CAM-Img", input_size=8)


@pytest.mark.parametrize("override", ["train.mask_space=raw", "train.schedule=step", "train.bias_lr_factor=0"])
def test_family_options_refuse_bad_values_naming_the_key(override):
    with pytest.raises(TameError, match=override.partition("=")[0].replace(".", r"\.")):
        load_config(None, [override])


def test_mask_space_normalised_multiplies_the_network_input():
    model = _lcam()
    model.mask_space = "normalised"
    masks, images = torch.rand(2, 1, 8, 8), torch.rand(2, 3, 8, 8)
    expected = model.classifier.net(masks * model.classifier.normalise(images))
    torch.testing.assert_close(model.masked_forward(masks, images), expected)
    model.mask_space = "pixels"
    torch.testing.assert_close(model.masked_forward(masks, images), model.classifier(masks * images))


def _tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    net = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=3, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=5
    )
    return net.eval()


def test_torchvision_vit_tokens_become_row_major_maps():
    net = _tiny_vit()
    assert model_prefix_tokens(net) == 1  # its class token, at index 0
    classifier = Classifier(net, "tiny_vit", MEAN, STD)
    model = TameModel(classifier, ["encoder.layers.encoder_layer_1.ln_1"], input_size=32)
    seen = {}
    handle = net.encoder.layers.encoder_layer_1.ln_1.register_forward_hook(lambda m, i, o: seen.update(tokens=o))
    images = torch.rand(2, 3, 32, 32)
    _, (feature,) = model.features(images)
    handle.remove()
    tokens = seen["tokens"]  # [2, 1 + 16, 32]
    assert feature.shape == (2, 32, 4, 4)
    for row in range(4):
        for col in range(4):
            torch.testing.assert_close(feature[:, :, row, col], tokens[:, 1 + 4 * row + col])


def test_prefix_tokens_from_the_config_for_a_model_that_does_not_tell():
    class Tokens(nn.Module):  # two prefix tokens and a 3x3 grid; nothing says so
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Conv2d(3, 8, 4, stride=4)
            self.block = nn.Identity()
            self.prefix = nn.Parameter(torch.zeros(1, 2, 8))
            self.head = nn.Linear(8, 4)

        def forward(self, x):
            patches = self.embed(x).flatten(2).transpose(1, 2)  # [B, 9, 8]
            return self.head(self.block(torch.cat([self.prefix.expand(len(x), -1, -1), patches], 1))[:, 0])

    assert model_prefix_tokens(Tokens()) is None
    classifier = Classifier(Tokens(), "tokens", MEAN, STD, prefix_tokens=2)
    assert classifier.num_prefix_tokens == 2 and classifier.has_tokens
    _, (feature,) = TameModel(classifier, ["block"], input_size=12).features(torch.rand(1, 3, 12, 12))
    assert feature.shape == (1, 8, 3, 3)
    assert load_config(None, ["model.prefix_tokens=2"]).model.prefix_tokens == 2
    with pytest.raises(TameError, match="model.prefix_tokens"):
        load_config(None, ["model.prefix_tokens=-1"])


def test_inspect_lists_the_encoder_layers_of_a_torchvision_vit():
    layers = {info.name: info.shape for info in feature_layers(Classifier(_tiny_vit(), "tiny_vit", MEAN, STD), 32)}
    for block in range(3):
        assert layers[f"encoder.layers.encoder_layer_{block}"] == (32, 4, 4)
        assert layers[f"encoder.layers.encoder_layer_{block}.ln_1"] == (32, 4, 4)


def test_tame_inspect_lists_a_torchvision_vit_block_and_its_ln_1(capsys):
    from tame.cli import inspect_main

    layers = ["encoder.layers.encoder_layer_3", "encoder.layers.encoder_layer_3.ln_1"]
    assert inspect_main(["examples.torchvision_vit:tiny", "--input-size", "64", "--layers", *layers]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("  encoder")]
    assert [(row[0], " ".join(row[1:6])) for row in rows] == [(name, "64 x 8 x 8") for name in layers]
    version = ["--version", "L-CAM-Img", "--layers", layers[1]]
    assert inspect_main(["examples.torchvision_vit:tiny", "--input-size", "64", *version]) == 0
    assert "attention mechanism L-CAM-Img" in capsys.readouterr().out


def _lrs(overrides: list[str], steps_per_epoch: int = 3, epochs: int = 3) -> list[tuple[float, float]]:
    train = load_config(None, ["train.max_lr=0.1", f"train.epochs={epochs}", *overrides]).train
    attention = nn.Conv2d(2, 2, 1)
    optimizer, scheduler = build_training_optimizer(attention, train, epochs * steps_per_epoch)
    lrs = []
    for _ in range(epochs * steps_per_epoch):
        lrs.append(tuple(group["lr"] for group in optimizer.param_groups))
        optimizer.step()
        scheduler.step()
    return lrs


def test_bias_lr_factor_one_gives_weights_and_biases_one_lr():
    assert all(bias == pytest.approx(2 * weight) for weight, bias in _lrs([]))  # TAME's default: 2x
    assert all(bias == weight for weight, bias in _lrs(["train.bias_lr_factor=1"]))


def test_epoch_decay_is_lcam_reduce_lr_and_decays_biases_too():
    overrides = ["train.schedule=epoch_decay", "train.lr_decay=0.5", "train.cycle_momentum=false"]
    lrs = _lrs([*overrides, "train.bias_weight_decay=true"])
    expected = [(0.1 * 0.5**epoch, 0.2 * 0.5**epoch) for epoch in range(3) for _ in range(3)]
    assert [lr for pair in lrs for lr in pair] == pytest.approx([lr for pair in expected for lr in pair])
    train = load_config(None, [*overrides, "train.bias_weight_decay=true"]).train
    optimizer, _ = build_training_optimizer(nn.Conv2d(2, 2, 1), train, 9)
    assert [group["weight_decay"] for group in optimizer.param_groups] == [5e-4, 5e-4]
    set_lr(optimizer, 1.0)  # the LR range test keeps the factor
    assert [group["lr"] for group in optimizer.param_groups] == [1.0, 2.0]


def test_epoch_decay_stops_after_lr_decay_epochs():
    """L-CAM's reduce_lr decays only at its change_points (1..12 for ResNet-50): later epochs keep the LR."""
    overrides = ["train.schedule=epoch_decay", "train.lr_decay=0.5", "train.cycle_momentum=false"]
    lrs = _lrs([*overrides, "train.lr_decay_epochs=1"])
    expected = [(0.1 * 0.5 ** min(epoch, 1), 0.2 * 0.5 ** min(epoch, 1)) for epoch in range(3) for _ in range(3)]
    assert [lr for pair in lrs for lr in pair] == pytest.approx([lr for pair in expected for lr in pair])


def test_family_configs_carry_the_published_recipes():
    vit = load_config(CONFIGS / "vit_b_16_ttame.yaml")
    assert vit.model.name == "torchvision.models:vit_b_16" and vit.model.version == "TAME"
    assert vit.model.layers == [f"encoder.layers.encoder_layer_{i}.ln_1" for i in (9, 10, 11)]
    assert (vit.model.token_transform, vit.model.mean, vit.model.std) == (
        "drop",
        [0.485, 0.456, 0.406],
        [0.229, 0.224, 0.225],
    )
    assert (vit.data.resize, vit.data.crop, vit.data.interpolation, vit.data.batch_size) == (256, 224, "bilinear", 32)
    train = vit.train
    assert (train.max_lr, train.epochs, train.bias_lr_factor, train.amp, train.mask_space) == (
        1e-3,
        8,
        1.0,
        "fp16",
        "normalised",
    )
    assert (train.label_source, train.regulariser, train.schedule) == ("model", "batch", "one_cycle")
    resnet, vgg = load_config(CONFIGS / "resnet50_lcam_img.yaml"), load_config(CONFIGS / "vgg16_lcam_img.yaml")
    assert (resnet.model.layers, vgg.model.layers) == (["layer4"], ["features.29"])
    for cfg, lr, decay, epochs, decays in ((resnet, 1e-4, 0.95, 26, 12), (vgg, 1e-2, 0.75, 8, 22)):
        assert (cfg.train.lr_decay_epochs, cfg.model.drop_rate) == (decays, None if cfg is resnet else 0.5)
        assert cfg.model.version == "L-CAM-Img" and cfg.data.batch_size == 64
        assert (cfg.train.max_lr, cfg.train.lr_decay, cfg.train.epochs, cfg.train.schedule) == (
            lr,
            decay,
            epochs,
            "epoch_decay",
        )
        assert (cfg.train.bias_lr_factor, cfg.train.bias_weight_decay, cfg.train.momentum) == (2.0, True, 0.9)
        assert (cfg.train.label_source, cfg.train.mask_space, cfg.train.cycle_momentum) == ("list", "pixels", False)
    for name in ("vgg16", "resnet50", "vit_b_16", "synthetic"):  # the CNN configs keep TAME's defaults
        cfg = load_config(CONFIGS / f"{name}.yaml").train
        assert (cfg.bias_lr_factor, cfg.bias_weight_decay, cfg.schedule, cfg.mask_space) == (
            2.0,
            False,
            "one_cycle",
            "auto",
        )
