"""P-TAME's plumbing: ``model.features`` from a config, checkpoints that record the auxiliary network, the
published configs, AdamW. The numbers against the authors' code: tests/test_ptame_reference.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tame.config import load_config
from tame.engine.optim import training_optimizer
from tame.errors import TameError
from tame.models import TameModel, create_classifier
from tame.models.auxiliary import network_from_meta
from tame.models.versions import get_version, loss_weights

REPO = Path(__file__).resolve().parents[1]
TINY = [  # a random torchvision ViT explained through a random ResNet-18, both at 64 px
    "model.name=examples.torchvision_vit:tiny",
    "model.features.pretrained=false",
    "data.crop=64",
    "data.resize=72",
]


@pytest.fixture(autouse=True)
def _repository_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))


def _model(*overrides: str) -> TameModel:
    cfg = load_config(REPO / "configs/synthetic_ptame.yaml", [*TINY, *overrides])
    return TameModel.from_config(cfg.model, cfg.data.crop, cfg.train, cfg.data)


def test_the_am_reads_the_auxiliary_network_and_the_classifier_is_untapped():
    model = _model()
    assert model.feature_net is not None and model.feature_net.name == "torchvision.models:resnet18"
    assert model.layers == ["layer1", "layer2", "layer3", "layer4"]
    assert model.feature_shapes == [(64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]
    assert model.attention.fuser.bias is None and model.attention.size == (16, 16)
    assert not any(module._forward_hooks for module in model.classifier.net.modules())
    images = torch.rand(4, 3, 64, 64)
    terms = model.train().training_step(images)
    terms["loss"].backward()
    assert all(p.grad is not None for p in model.attention.parameters())
    assert all(p.grad is None for p in model.feature_net.parameters())
    explanation = model.eval().explain(images)
    assert explanation.maps.shape == (4, 64, 64) and explanation.logits.shape == (4, 6)


def test_a_checkpoint_records_the_auxiliary_network(tmp_path):
    model = _model()
    model.save_attention(tmp_path / "am.pt")
    meta = torch.load(tmp_path / "am.pt", weights_only=True)["meta"]
    assert meta["features"]["name"] == "torchvision.models:resnet18"
    assert meta["features"]["layers"] == ["layer1", "layer2", "layer3", "layer4"]
    assert meta["features"]["mean"] == pytest.approx([0.485, 0.456, 0.406])
    rebuilt = network_from_meta({"features": {**meta["features"], "weights": None}})
    assert rebuilt is not None and rebuilt.name == "torchvision.models:resnet18"
    other = _model("model.features.name=resnet18", "model.features.mean=auto", "model.features.std=auto")
    with pytest.raises(TameError, match="auxiliary network 'torchvision.models:resnet18'"):
        other.load_attention(tmp_path / "am.pt")


def test_p_tame_needs_an_auxiliary_network():
    classifier = create_classifier("resnet18", pretrained=False, num_classes=6)
    with pytest.raises(TameError, match="model.features.name"):
        TameModel(classifier, ["layer1", "layer2"], "P-TAME", input_size=64)
    with pytest.raises(TameError, match="model.features.layers"):
        load_config(REPO / "configs/synthetic_ptame.yaml", ["model.features.layers=[]"])


@pytest.mark.parametrize(
    ("name", "ce", "area", "variation", "area_power"),
    [("resnet50", 0.16142940055382465, 0.8385705994463174, 0.0, 0.3), ("vgg16", 0.07278, 0.977712, 0.0001, 0.3),
     ("vit_b_16", 0.13129188542479736, 0.8385705994463174, 0.0, 0.5)],
)  # fmt: skip
def test_the_published_configs(name, ce, area, variation, area_power):
    cfg = load_config(REPO / f"configs/{name}_ptame.yaml")
    assert cfg.model.version == "P-TAME" and cfg.model.layers == [] and cfg.train.epochs == 1
    assert cfg.model.features.layers == ["layer1", "layer2", "layer3", "layer4"]
    assert (cfg.train.optimizer, cfg.train.max_lr, cfg.train.bias_lr_factor) == ("adamw", 1e-4, 1.0)
    weights = loss_weights(cfg.model.version, vars(cfg.train.loss))
    assert (weights.ce, weights.area, weights.variation, weights.area_power) == (ce, area, variation, area_power)
    assert loss_weights("P-TAME").ce == get_version("P-TAME").loss.ce == pytest.approx(0.1614, abs=1e-4)


def test_adamw_with_amsgrad_over_one_lr_and_decay_on_everything():
    cfg = load_config(REPO / "configs/synthetic_ptame.yaml", TINY)
    model = _model()
    optimizer = training_optimizer(model.attention, cfg.train)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["amsgrad"]
    assert {group["lr"] for group in optimizer.param_groups} == {1e-4}
    assert {group["weight_decay"] for group in optimizer.param_groups} == {cfg.train.weight_decay}
