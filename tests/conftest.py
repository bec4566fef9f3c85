"""Shared fixtures: tiny random-weight timm models (no downloads) and the shared data folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


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
