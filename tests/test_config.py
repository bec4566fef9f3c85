"""Configs: YAML -> typed dataclasses, overrides, errors that name the key, and the shipped configs."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from tame.config import Config, expand_path, load_config, save_config
from tame.errors import TameError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "vit_b_16", "synthetic"])
def test_shipped_configs_load(name):
    cfg = load_config(CONFIGS / f"{name}.yaml")
    assert isinstance(cfg, Config) and cfg.model.layers and cfg.train.max_lr > 0


def test_paper_settings():
    vgg, resnet = load_config(CONFIGS / "vgg16.yaml"), load_config(CONFIGS / "resnet50.yaml")
    assert (vgg.model.name, vgg.model.layers) == ("vgg16.tv_in1k", ["features.16", "features.23", "features.30"])
    assert (vgg.train.max_lr, vgg.train.epochs, vgg.data.batch_size) == (1e-3, 8, 32)
    assert (resnet.model.name, resnet.model.layers) == ("resnet50.tv_in1k", ["layer2", "layer3", "layer4"])
    assert (resnet.train.max_lr, resnet.train.epochs, resnet.data.batch_size) == (1e-4, 4, 32)
    for cfg in (vgg, resnet):
        assert (cfg.train.backbone_mode, cfg.train.regulariser, cfg.train.label_source) == ("train", "batch", "list")
        assert (cfg.train.weight_decay, cfg.train.momentum) == (5e-4, 0.9)
        assert (cfg.data.resize, cfg.data.crop) == (256, 224)
    vit = load_config(CONFIGS / "vit_b_16.yaml")
    assert vit.model.name == "vit_base_patch16_224.augreg_in21k_ft_in1k" and vit.train.label_source == "model"


def test_overrides_are_typed():
    cfg = load_config(None, ["train.max_lr=1e-3", "train.epochs=2", "model.layers=a b", "train.compile=true"])
    assert (cfg.train.max_lr, cfg.train.epochs, cfg.model.layers, cfg.train.compile) == (1e-3, 2, ["a", "b"], True)


@pytest.mark.parametrize(
    "override, key",
    [
        ("train.max_lr=-1e-3", "train.max_lr"),
        ("train.max_lrr=1e-3", "did you mean train.max_lr"),
        ("train.epochs=1.5", "train.epochs"),
        ("train.device=tpu", "train.device"),
        ("train.amp=fp8", "train.amp"),
        ("train.keep_checkpoints=0", "train.keep_checkpoints"),
        ("train.checkpoint_every=-1", "train.checkpoint_every"),
        ("log.wandb=maybe", "log.wandb"),
        ("log.log_every=-5", "log.log_every"),
        ("output_dir=", "output_dir: needs a value, got an empty one"),
        ("train.epochs=", "train.epochs: needs a value"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(TameError, match=key):
        load_config(None, [override])


def test_unknown_key_in_yaml_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  max_lr: 1e-4\n  epoch: 3\n")
    with pytest.raises(TameError, match=r"unknown config key train\.epoch \(did you mean train\.epochs\?\)"):
        load_config(path)


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(CONFIGS / "resnet50.yaml", ["train.max_lr=3e-4"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert asdict(again) == asdict(cfg) and again.train.max_lr == 3e-4


def test_data_paths_expand_the_environment(monkeypatch):
    monkeypatch.setenv("TAME_DATA", "/datasets/imagenet")
    assert expand_path("${TAME_DATA}/ILSVRC2012_img_train", "data.root") == Path(
        "/datasets/imagenet/ILSVRC2012_img_train"
    )
    monkeypatch.delenv("TAME_DATA")
    with pytest.raises(TameError, match=r"data\.root.*TAME_DATA.*not set"):
        expand_path("${TAME_DATA}/ILSVRC2012_img_train", "data.root")


def test_the_config_tree_spells_the_metrics_tile_counts():
    """eval.class_sensitivity is checked in the config (which cannot import tame.metrics) against the same values."""
    from tame.config.tree import CLASS_SENSITIVITY_TILES
    from tame.metrics.class_sensitivity import TILES

    assert tuple(CLASS_SENSITIVITY_TILES) == tuple(TILES)
