"""P-TAME's plumbing: ``model.features`` from a config, checkpoints that record the auxiliary network, the
published configs, AdamW. The numbers against the authors' code: tests/test_ptame_reference.py."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import attention_of, tiny_overrides

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
    torch.manual_seed(123)  # a random auxiliary network is the same whatever the RNG's state (compare, export)
    rebuilt = network_from_meta(meta)
    for (key, mine), theirs in zip(model.feature_net.state_dict().items(), rebuilt.state_dict().values()):
        assert torch.equal(mine, theirs), key
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


def _ptame_overrides(data: Path, out: Path) -> list[str]:
    """tests/train_helpers.py's tiny run as P-TAME: test_resnet explained through a random ResNet-18.

    SGD, not P-TAME's AdamW: the test compares the distributed machinery (gradients all-reduced, labels gathered,
    the auxiliary network on every rank), and AdamW turns rounding-level gradient differences (a conv bias before
    BatchNorm has a zero gradient up to rounding) into LR-sized steps that differ between batch splits."""
    features = ["model.features.name=torchvision.models:resnet18", "model.features.pretrained=false"]
    features += ["model.features.layers=[layer1, layer2, layer3, layer4]", "model.layers=[]"]
    return tiny_overrides(data, out, "model.version=P-TAME", *features, "train.epochs=1")


def test_torchrun_two_processes_match_one_process(data, tmp_path):
    """gloo, 2 x batch 4 == 1 x batch 8 with the auxiliary network: the same AM after one epoch."""
    from tame.engine.train import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_config(None, _ptame_overrides(data, tmp_path / "one")))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump(asdict(load_config(None, _ptame_overrides(data, tmp_path / "two")))))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "tame.cli", "train", "--config", str(config)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = torch.load(tmp_path / "two" / "epoch_1.pt", weights_only=True)
    assert state["world_size"] == 2 and state["meta"]["features"]["name"] == "torchvision.models:resnet18"
    expected = attention_of(tmp_path / "one" / "epoch_1.pt")
    for key, value in state["attention"].items():
        torch.testing.assert_close(value, expected[key], atol=1e-5, rtol=0, msg=key)
