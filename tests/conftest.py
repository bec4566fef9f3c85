"""Shared fixtures: tiny random-weight timm models (no downloads), the tiny synthetic training set, and the real
ImageNet photos and reference lists that ship in tests/data (nothing outside the repository is read)."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import pytest
import torch
from train_helpers import make_training_data

ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = Path(__file__).resolve().parent / "data"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def example_images() -> Path:
    """Ten ImageNet validation photos, named by their classes: one RGBA PNG, JPEGs of 138x150 to 469x500."""
    return TEST_DATA / "images"


@pytest.fixture(scope="session")
def reference_lists(tmp_path_factory) -> Path:
    """A folder with the reference's ImageNet lists: Validation_2000.txt and Evaluation_2000.txt (the copies in
    datalist/ILSVRC) and the 50,000-line val.txt (kept xz-compressed in tests/data: 124 kB instead of 1.6 MB)."""
    folder = tmp_path_factory.mktemp("reference-lists")
    for name in ("Validation_2000.txt", "Evaluation_2000.txt"):
        shutil.copyfile(ROOT / "datalist" / "ILSVRC" / name, folder / name)
    (folder / "val.txt").write_bytes(lzma.decompress((TEST_DATA / "reference-lists" / "val.txt.xz").read_bytes()))
    return folder


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    """tests/train_helpers.py's tiny synthetic training set: 3 classes, 48 training images (6 steps of 8 per epoch)
    and 6 validation images. One copy for the whole session: tests only read it."""
    return make_training_data(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture
def tiny_classifier():
    """timm's 470k-parameter ResNet (layers layer2/3/4), random weights."""
    from tame.models import create_classifier

    torch.manual_seed(0)
    return create_classifier("test_resnet", pretrained=False)


@pytest.fixture
def tiny_model(tiny_classifier):
    from tame.models import TameModel

    torch.manual_seed(0)
    return TameModel(tiny_classifier, ["layer2", "layer3", "layer4"], input_size=64)
