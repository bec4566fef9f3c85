"""Explainers: TAME and the baselines share one interface; maps of the right shape and range, no side effects."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tame.errors import TameError
from tame.methods import Rise, create_explainer, list_methods, rise_masks
from tame.methods.random_map import RandomMap
from tame.models import Classifier

OPTIONS = {
    "rise": {"num_masks": 64, "batch_size": 32},
    "scorecam": {"batch_size": 64},
    "ablationcam": {"batch_size": 64},
}


def hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in module.modules())


@pytest.fixture
def images():
    torch.manual_seed(1)
    return torch.rand(2, 3, 64, 64)


@pytest.mark.parametrize("method", list_methods())
def test_every_method_gives_maps_in_range_without_side_effects(tiny_model, images, method):
    tiny_model.eval()
    original = images.clone()
    net = tiny_model.classifier.net
    hooks_before, modules_before = hooks(net), dict(net.named_modules())
    state_before = {k: v.clone() for k, v in net.state_dict().items()}
    with create_explainer(method, tiny_model, **OPTIONS.get(method, {})) as explainer:
        out = explainer.explain(images)
    assert out.maps.shape == (2, 64, 64)
    assert out.maps.dtype == torch.float32
    assert out.maps.min() >= 0 and out.maps.max() <= 1 and out.maps.max() > 0
    assert torch.isfinite(out.maps).all()
    logits = tiny_model.predict(images)
    torch.testing.assert_close(out.logits, logits)
    assert torch.equal(out.classes, logits.argmax(dim=1))
    assert torch.equal(images, original) and not images.requires_grad
    assert hooks(net) == hooks_before
    assert dict(net.named_modules()) == modules_before  # Ablation-CAM put the target layer back
    assert all(torch.equal(v, state_before[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("method", ["gradcam", "rise"])
def test_explicit_classes_are_explained(tiny_model, images, method):
    explainer = create_explainer(method, tiny_model.eval(), **OPTIONS.get(method, {}))
    out = explainer.explain(images, torch.tensor([3, 7]))
    assert out.classes.tolist() == [3, 7]
    assert explainer.explain(images, 5).classes.tolist() == [5, 5]
    with pytest.raises(TameError, match="one per image"):
        explainer.explain(images, torch.tensor([1, 2, 3]))
    with pytest.raises(TameError, match="out of range"):
        explainer.explain(images, 1000)


def test_gradcam_follows_its_definition(tiny_model, images):
    """Grad-CAM = ReLU(sum_c mean(dS/dA_c) A_c), min-max normalised, bilinearly resized, normalised again."""
    import cv2
    import numpy as np

    classifier = tiny_model.eval().classifier
    out = create_explainer("gradcam", tiny_model, layer="layer3").explain(images)
    store = {}
    handle = classifier.net.layer3.register_forward_hook(lambda m, i, o: store.update(a=o))
    try:
        x = images.clone().requires_grad_(True)
        logits = classifier(x)
        score = logits.gather(1, out.classes.view(-1, 1)).sum()
        grads = torch.autograd.grad(score, store["a"])[0]
    finally:
        handle.remove()
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * store["a"]).sum(1)).detach().numpy()
    for b in range(2):
        c = cam[b] - cam[b].min()
        c = cv2.resize(np.float32(c / (1e-7 + c.max())), (64, 64))
        c = (c - c.min()) / (1e-7 + (c - c.min()).max())
        np.testing.assert_allclose(out.maps[b].numpy(), c, atol=1e-5)


def test_unknown_method_and_missing_requirements_are_one_line_errors(tiny_model, tiny_classifier):
    with pytest.raises(TameError, match="did you mean gradcam"):
        create_explainer("gradcamm", tiny_model)
    with pytest.raises(TameError, match="needs a TameModel"):
        create_explainer("tame", tiny_classifier)
    with pytest.raises(TameError, match="target layer"):
        create_explainer("gradcam", tiny_classifier)
    with pytest.raises(TameError, match="unknown target layer"):
        create_explainer("gradcam", tiny_classifier, layer="layer9")
    with pytest.raises(TameError, match="has no option 'num_masks'"):
        create_explainer("gradcam", tiny_model, num_masks=10)
    assert create_explainer("GradCAM", tiny_classifier, layer="layer4").layer == "layer4"


def test_rise_masks_are_reproducible_and_shaped():
    masks = rise_masks(16, (30, 40), grid=5, keep=0.5, seed=2)
    assert masks.shape == (16, 30, 40)
    assert masks.min() >= 0 and masks.max() <= 1
    assert torch.equal(masks, rise_masks(16, (30, 40), grid=5, keep=0.5, seed=2))
    assert not torch.equal(masks, rise_masks(16, (30, 40), grid=5, keep=0.5, seed=3))


class TopLeftScorer(nn.Module):
    """Class 0's logit is the brightness of the top-left quadrant; class 1's is constant."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        top_left = x[:, :, :half, :half].mean(dim=(1, 2, 3)) * 20
        return torch.stack([top_left, torch.full_like(top_left, 5.0)], dim=1)


def test_rise_finds_the_region_the_score_depends_on():
    classifier = Classifier(TopLeftScorer(), "top-left", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    images = torch.ones(1, 3, 32, 32)
    maps = Rise(classifier, num_masks=400, grid=4, batch_size=100).explain(images, classes=0).maps[0]
    assert maps[:16, :16].mean() > 2 * maps[16:, 16:].mean()


def test_random_maps_are_drawn_per_list_position(tiny_classifier):
    """The random control draws each image's map from its list position: a rank that reads positions 1, 3, 5 gets
    the maps one process gives those images, however the batches fall (before: one generator in reading order)."""
    images = torch.rand(6, 3, 32, 32)
    whole = RandomMap(tiny_classifier).explain(images).maps  # one process: positions 0..5
    shard = RandomMap(tiny_classifier)
    shard.read_positions([1, 3, 5])
    first, rest = shard.explain(images[1:2]).maps, shard.explain(images[3::2]).maps
    assert torch.equal(torch.cat([first, rest]), whole[1::2])
    again = RandomMap(tiny_classifier)
    assert torch.equal(again.explain(images[:3]).maps, whole[:3]) and not torch.equal(whole[0], whole[1])
