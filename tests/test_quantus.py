"""TAME through Quantus: ``tame.methods.quantus_adapter.explain_func`` is the explain_func Quantus calls, and its
parameter randomisation reaches what TAME explains (the classifier and the attention mechanism)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from tame.errors import TameError
from tame.methods.quantus_adapter import QuantusModel, explain_func
from tame.models import TameModel, create_classifier


@pytest.fixture(scope="module")
def model() -> TameModel:
    torch.manual_seed(0)
    classifier = create_classifier("resnet10t", pretrained=False, num_classes=4)
    return TameModel(classifier, ["layer2", "layer3", "layer4"], input_size=64).eval()


def batch(count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(count, 3, 64, 64, generator=generator).numpy(), np.arange(count) % 4


def test_explain_func_gives_tames_maps_as_quantus_wants_them(model):
    images, targets = batch()
    maps = explain_func(QuantusModel(model), images, targets, device="cpu")
    expected = model.explain(torch.from_numpy(images), torch.from_numpy(targets)).maps
    assert maps.shape == (2, 1, 64, 64) and maps.dtype == np.float32
    assert np.array_equal(maps[:, 0], expected.numpy())


def test_a_deep_copy_of_the_model_taps_its_own_network(model):
    images = torch.from_numpy(batch()[0])
    copied = copy.deepcopy(model)  # Quantus copies the model before randomising it
    assert torch.equal(copied.explain(images, 1).maps, model.explain(images, 1).maps)
    with torch.no_grad():
        copied.classifier.net.layer2[0].bn2.weight.normal_()  # timm zero-initialises it: the block now counts
    assert not torch.equal(copied.explain(images, 1).maps, model.explain(images, 1).maps)


def test_explain_func_refuses_a_model_it_cannot_explain(model):
    images, targets = batch()
    with pytest.raises(TameError, match="QuantusModel"):
        explain_func(model.classifier, images, targets)


def test_quantus_mprt_runs_through_explain_func(model):
    quantus = pytest.importorskip("quantus")
    images, targets = batch()
    metric = quantus.MPRT(layer_order="top_down", disable_warnings=True, display_progressbar=False)
    scores = metric(model=QuantusModel(model), x_batch=images, y_batch=targets, explain_func=explain_func, device="cpu")
    assert np.allclose(scores["original"], 1.0)
    layers = [name for name in scores if name != "original"]
    assert layers[0].startswith("tame.attention.")  # the attention mechanism is randomised first, top down
    assert any(name.startswith("tame.classifier.net.") for name in layers)
    assert np.mean(scores[layers[-1]]) < 0.9  # fully randomised: the map no longer looks like the trained one
