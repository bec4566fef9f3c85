"""Each formula of docs/METHOD.md on small hand-checkable tensors, and the fast paths against the plain ones."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tame.errors import TameError
from tame.models import (
    FeatureTaps,
    TameModel,
    build_attention,
    explanation_maps,
    get_version,
    list_attention_versions,
    min_max_normalise,
)
from tame.models.loss import area_loss, tame_loss, variation_loss
from tame.models.tame import TrainingStep


def _features(batch=2, channels=(3, 4), sizes=(6, 3), seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, s, s, generator=gen) for c, s in zip(channels, sizes)]


def test_tame_branch_is_relu_of_bn_conv_plus_skip():
    am = build_attention("TAME", [2], num_classes=3, first_hw=(2, 2)).eval()
    with torch.no_grad():
        am.convs[0].weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]).view(2, 2, 1, 1))
        am.convs[0].bias.copy_(torch.tensor([0.5, 0.0]))
        am.bns[0].running_mean.copy_(torch.tensor([1.0, 0.0]))
        am.bns[0].running_var.copy_(torch.tensor([4.0, 1.0]) - am.bns[0].eps)
        am.bns[0].weight.copy_(torch.tensor([2.0, 1.0]))
        am.bns[0].bias.copy_(torch.tensor([0.0, 1.0]))
    feature = torch.tensor([[[[1.0, -1.0], [0.0, 2.0]], [[0.0, 1.0], [3.0, -2.0]]]])  # [1, 2, 2, 2]
    conv0 = feature[0, 0] + 2 * feature[0, 1] + 0.5
    conv1 = -feature[0, 1]
    bn0 = (conv0 - 1.0) / 2.0 * 2.0
    bn1 = conv1 * 1.0 + 1.0
    expected = torch.stack([torch.relu(bn0 + feature[0, 0]), torch.relu(bn1 + feature[0, 1])])
    torch.testing.assert_close(am.branch(0, feature)[0], expected)


def test_other_versions_branches():
    feats = _features()
    for version, check in {
        "Sigmoidinfeaturebranch": lambda am, f: torch.sigmoid(am.bns[0](am.convs[0](f)) + f),
        "Noskipconnection": lambda am, f: torch.relu(am.bns[0](am.convs[0](f))),
        "NoskipNobatchnorm": lambda am, f: torch.relu(am.convs[0](f)),
    }.items():
        am = build_attention(version, [3, 4], num_classes=5, first_hw=(6, 6)).eval()
        torch.testing.assert_close(am.branch(0, feats[0]), check(am, feats[0]))
    no_skip = build_attention("Noskipconnection", [3, 4], num_classes=5, first_hw=(6, 6))
    assert no_skip.convs[1].out_channels == 5 and no_skip.fuser.in_channels == 2 * 5
    assert not hasattr(build_attention("NoskipNobatchnorm", [3], 5, (6, 6)), "bns")


@pytest.mark.parametrize(("first_hw", "expected"), [((6, 6), (6, 6)), ((60, 80), (56, 56)), ((28, 70), (28, 56))])
def test_resolution_is_first_map_capped_at_56(first_hw, expected):
    for version in ("TAME", "Sigmoidinfeaturebranch", "Noskipconnection", "NoskipNobatchnorm"):
        assert build_attention(version, [3], 4, first_hw).size == expected


@pytest.mark.parametrize("version", ["P-TAME", "L-CAM-Img"])
def test_the_56_cap_is_tames_alone(version):
    """P-TAME (ptame's PTAMEAttention: the first map's own size) and L-CAM-Img (no resize) have no cap."""
    assert build_attention(version, [3], 4, (112, 112)).size == (112, 112)
    assert build_attention(version, [3], 4, (60, 80)).size == (60, 80)


def test_fuse_is_bilinear_resize_concat_then_1x1_conv():
    feats = _features()
    am = build_attention("TAME", [3, 4], num_classes=5, first_hw=(6, 6)).eval()
    branches = [am.branch(i, f) for i, f in enumerate(feats)]
    resized = [F.interpolate(b, size=(6, 6), mode="bilinear", align_corners=False) for b in branches]
    expected = F.conv2d(torch.cat(resized, 1), am.fuser.weight, am.fuser.bias)
    torch.testing.assert_close(am(feats), expected)


@pytest.mark.parametrize("version", list_attention_versions())
def test_class_selective_paths_equal_all_maps_then_select(version):
    count = get_version(version).layers or 2
    feats = _features(batch=4)[:count]
    am = build_attention(version, [3, 4][:count], num_classes=7, first_hw=(6, 6)).eval()
    full = am(feats)  # [4, 7, 6, 6]
    columns = torch.tensor([6, 0, 3, 3, 1])
    torch.testing.assert_close(am(feats, columns), full[:, columns], rtol=0, atol=1e-6)
    per_image = torch.tensor([2, 6, 0, 2])
    torch.testing.assert_close(
        am(feats, per_image, per_image=True), full[torch.arange(4), per_image].unsqueeze(1), rtol=0, atol=1e-6
    )


def test_area_loss_by_hand():
    masks = torch.tensor([0.0, 0.25, 1.0, 0.5]).view(1, 1, 2, 2)
    expected = sum((v + 0.0005) ** 0.3 for v in (0.0, 0.25, 1.0, 0.5)) / 4
    assert area_loss(masks).item() == pytest.approx(expected, rel=1e-6)


def test_variation_loss_by_hand():
    r = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
    masks = torch.stack([r, 2 * r]).view(2, 1, 3, 3)  # B = 2
    total = 0.0
    for m in (r, 2 * r):
        vertical = sum((m[i + 1, j] - m[i, j]) ** 2 for i in range(2) for j in range(3))
        horizontal = sum((m[i, j + 1] - m[i, j]) ** 2 for i in range(3) for j in range(2))
        border = 0.3 * sum(m[-1, :] ** 2 + m[0, :] ** 2 + m[:, -1] ** 2 + m[:, 0] ** 2)
        total += vertical + horizontal + border
    assert variation_loss(masks).item() == pytest.approx(float(total) / (2 * 2), rel=1e-6)


def test_tame_loss_weights_and_inputs_unchanged():
    logits = torch.randn(3, 5)
    labels = torch.tensor([0, 4, 2])
    masks = torch.rand(3, 3, 4, 4)
    before = masks.clone()
    out = tame_loss(logits, labels, masks)
    assert set(out) == {"loss", "ce", "area", "var"}
    torch.testing.assert_close(out["ce"], F.cross_entropy(logits, labels))
    torch.testing.assert_close(out["loss"], 1.5 * out["ce"] + 2 * out["area"] + 0.01 * out["var"])
    assert torch.equal(masks, before)


def test_min_max_normalise_and_explanation_map():
    c = torch.tensor([[[[1.0, 3.0], [5.0, 2.0]]], [[[7.0, 7.0], [7.0, 7.0]]]])
    normalised = min_max_normalise(c)
    torch.testing.assert_close(normalised[0, 0], torch.tensor([[0.0, 0.5], [1.0, 0.25]]))
    assert torch.count_nonzero(normalised[1]) == 0  # a constant map has no explanation
    maps = explanation_maps(c, (4, 6))
    expected = F.interpolate(normalised, size=(4, 6), mode="bilinear", align_corners=False)[:, 0]
    assert maps.shape == (2, 4, 6)
    torch.testing.assert_close(maps, expected)


def reference_step(model: TameModel, images: torch.Tensor, regulariser: str, labels=None):
    """docs/METHOD.md, "The training step", step by step, computing all K class maps (the published code's way)."""
    with torch.no_grad():
        logits0, feats = model.features(images)
    y = logits0.argmax(1) if labels is None else labels
    a = torch.sigmoid(model.attention(feats))  # [B, K, S, S]
    m = a[torch.arange(len(y)), y].unsqueeze(1)  # [B, 1, S, S]
    big = F.interpolate(m, size=images.shape[-2:], mode="bilinear", align_corners=False)
    logits1 = model.classifier.net((big * images - model.classifier.mean) / model.classifier.std)
    r = a[:, y] if regulariser == "batch" else m  # [B, B, S, S] or [B, 1, S, S]
    area = torch.mean((r + 0.0005) ** 0.3)
    dy = torch.sum(torch.abs(r[:, :, 1:, :] - r[:, :, :-1, :]) ** 2)
    dx = torch.sum(torch.abs(r[:, :, :, 1:] - r[:, :, :, :-1]) ** 2)
    border = 0.3 * torch.sum(r[:, :, -1, :] ** 2 + r[:, :, 0, :] ** 2 + r[:, :, :, -1] ** 2 + r[:, :, :, 0] ** 2)
    var = (dy + dx + border) / (2 * r.size(0))
    ce = F.cross_entropy(logits1, y)
    return {"loss": 1.5 * ce + 2 * area + 0.01 * var, "ce": ce, "area": area, "var": var}, r


@pytest.mark.parametrize("regulariser", ["batch", "diagonal"])
def test_training_step_matches_reference(tiny_classifier, regulariser):
    torch.manual_seed(1)
    model = TameModel(tiny_classifier, ["layer2", "layer3", "layer4"], input_size=64, regulariser=regulariser)
    model.train()
    images = torch.rand(4, 3, 64, 64)
    got = model.training_step(images)
    expected, r = reference_step(model, images, regulariser)
    for key in ("loss", "ce", "area", "var"):
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6)
    assert r.shape == ((4, 4, 8, 8) if regulariser == "batch" else (4, 1, 8, 8))
    # the gradients of both agree too (class-selective fuse vs all K maps)
    got_grads = torch.autograd.grad(got["loss"], list(model.attention.parameters()))
    exp_grads = torch.autograd.grad(expected["loss"], list(model.attention.parameters()))
    for g, e in zip(got_grads, exp_grads):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6)


def test_training_step_with_list_labels(tiny_classifier):
    model = TameModel(tiny_classifier, ["layer2", "layer3", "layer4"], input_size=64, label_source="list").train()
    images = torch.rand(3, 3, 64, 64)
    labels = torch.tensor([5, 1, 9])
    got = model.training_step(images, labels)
    expected, _ = reference_step(model, images, "batch", labels)
    torch.testing.assert_close(got["loss"], expected["loss"], rtol=1e-5, atol=1e-6)


def test_explain_matches_definition(tiny_model):
    tiny_model.eval()
    images = torch.rand(2, 3, 64, 64)
    out = tiny_model.explain(images, classes=torch.tensor([3, 7]))
    logits, feats = tiny_model.features(images)
    c = tiny_model.attention(feats)[torch.arange(2), torch.tensor([3, 7])].unsqueeze(1)
    torch.testing.assert_close(out.maps, explanation_maps(c, (64, 64)), rtol=0, atol=1e-5)
    assert out.maps.shape == (2, 64, 64) and out.maps.min() >= 0 and out.maps.max() <= 1
    predicted = tiny_model.explain(images)
    assert torch.equal(predicted.classes, logits.argmax(1))


def test_backbone_train_mode_uses_batch_stats_and_leaves_running_stats(tiny_classifier):
    before = {k: v.clone() for k, v in tiny_classifier.net.state_dict().items()}
    model = TameModel(tiny_classifier, ["layer2", "layer3", "layer4"], input_size=64, backbone_mode="train").train()
    images = torch.rand(4, 3, 64, 64)
    out = model.training_step(images)
    out["loss"].backward()
    for key, value in tiny_classifier.net.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not tiny_classifier.net.training
    eval_model = TameModel(tiny_classifier, ["layer2", "layer3", "layer4"], input_size=64).train()
    eval_model.attention.load_state_dict(model.attention.state_dict())
    assert not torch.allclose(eval_model.training_step(images)["ce"], model.training_step(images)["ce"])


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(tiny_model):
    tiny_model.train()
    images = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    optimizer = torch.optim.SGD(tiny_model.attention.parameters(), lr=0.05, momentum=0.9)
    frozen = {k: v.clone() for k, v in tiny_model.classifier.state_dict().items()}
    losses = []
    for _ in range(8):
        out = tiny_model.training_step(images)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        losses.append(out["loss"].item())
    assert losses[-1] < losses[0]
    for key, value in tiny_model.classifier.state_dict().items():
        assert torch.equal(value, frozen[key]), f"backbone weight {key} changed"


def test_label_gather_makes_two_halves_one_batch(tiny_classifier):
    """What DDP relies on: two 'ranks' of 2 images, each seeing the global batch's labels, average to one step of 4."""
    torch.manual_seed(1)
    model = TameModel(tiny_classifier, ["layer2", "layer3", "layer4"], input_size=64).train()
    model.attention.eval()  # running statistics: each half's maps equal the whole batch's (one process, no SyncBN)
    images = torch.rand(4, 3, 64, 64)
    whole = model.training_step(images)
    everyone = model.predict(images).argmax(1)  # the global batch's labels

    def gather_as(rank):
        def gather(labels):
            assert torch.equal(labels, everyone[2 * rank : 2 * rank + 2])
            return everyone, 2 * rank

        return gather

    halves = []
    for rank in (0, 1):
        model.label_gather = gather_as(rank)
        halves.append(model.training_step(images[2 * rank : 2 * rank + 2]))
    for key in ("loss", "ce", "area", "var"):
        torch.testing.assert_close((halves[0][key] + halves[1][key]) / 2, whole[key], rtol=1e-5, atol=1e-6)


def test_training_step_module_is_the_models_step(tiny_model):
    tiny_model.train()
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    step = TrainingStep(tiny_model)
    assert [n for n, p in step.named_parameters() if p.requires_grad] == [
        f"model.attention.{n}" for n, _ in tiny_model.attention.named_parameters()
    ]  # what DDP synchronises: the AM only
    got, expected = step(images), tiny_model.training_step(images)
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_feature_taps_record_only_inside_a_capture(tiny_classifier):
    net = tiny_classifier.net
    images = torch.rand(1, 3, 64, 64)
    with FeatureTaps(net, ["layer4", "layer2"]) as taps:
        with taps.capture((64, 64)) as maps:
            net(images)
        assert [m.shape[1] for m in maps] == [96, 48]
        net(images)  # outside a capture: nothing is kept
        with pytest.raises(TameError, match="did not run"):
            taps.collect()
        with pytest.raises(RuntimeError, match="boom"), taps.capture((64, 64)) as failed:
            net(images)
            raise RuntimeError("boom")
        assert failed == []
        net(images)
        with pytest.raises(TameError, match="did not run"):  # the failed capture was closed too
            taps.collect()
