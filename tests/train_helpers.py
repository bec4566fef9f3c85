"""Shared by the engine tests: a tiny synthetic training set and a config that trains on it in seconds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tame.config import Config, load_config

# the tiny model of the explain/export tests: timm's test_resnet at 64 px, random weights
TINY_MODEL_CONFIG = """model:
  name: test_resnet
  pretrained: false
  layers: [layer2, layer3, layer4]
data:
  resize: 72
  crop: 64
"""


def make_training_data(folder: Path) -> Path:
    """48 training images (3 classes) at 32 px: 6 steps of batch 8 per epoch."""
    from tame.data.synthetic import make_synthetic

    return make_synthetic(folder, classes=3, train_per_class=16, val_per_class=2, size=32, seed=0).root


def attention_of(path: Path) -> dict[str, torch.Tensor]:
    """The attention module's weights in a training checkpoint, on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)["attention"]


def tiny_overrides(data: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        "model.name=test_resnet",
        "model.pretrained=false",
        "model.num_classes=3",
        f"data.root={data}",
        f"data.train_list={data / 'train.txt'}",
        "data.backend=torch",
        "data.workers=0",
        "data.batch_size=8",
        "data.resize=36",
        "data.crop=32",
        "train.epochs=2",
        "train.max_lr=1e-2",
        "train.deterministic=true",
        "train.checkpoint_every=2",
        "train.keep_checkpoints=3",
        "log.wandb=disabled",
        "log.tensorboard=false",
        "log.log_every=2",
        "log.images_per_epoch=2",
        f"output_dir={output_dir}",
        *extra,
    ]


def tiny_config(data: Path, output_dir: Path, *extra: str) -> Config:
    return load_config(None, tiny_overrides(data, output_dir, *extra))


@pytest.fixture
def one_thread():
    """One intra-op thread (fast and repeatable on a shared 2-core machine); global torch settings restored."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


def eval_config(config: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), **options) -> Config:
    """``load_config(config, overrides)`` with keys of the ``eval`` section (``methods``, ``sanity_checks``: of the
    ``compare`` section) set from keyword arguments, paths as the config's text: what ``tame eval`` / ``tame
    compare`` build from their flags."""
    section = {"methods": "compare", "sanity_checks": "compare"}
    values = {f"{section.get(key, 'eval')}.{key}": _text(value) for key, value in options.items()}
    return load_config(config, overrides, values)


def _text(value):
    return str(value) if isinstance(value, Path) else value
