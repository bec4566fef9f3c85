"""Every feature-map shape docs/METHOD.md states (its table "The tapped maps of the family's configs at 224 px")
against a forward of the randomly initialised classifier at 224 px, and the prose's shapes against that table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tame.models import FeatureTaps, create_classifier

METHOD = Path(__file__).resolve().parents[1] / "docs" / "METHOD.md"
BUILDERS = {"vit_b_16": "torchvision.models:vit_b_16"}  # the others are timm names
ROW = re.compile(r"^\| (\w+) \| ([\w.]+) \| (\d+) x (\d+) x (\d+) \|", re.MULTILINE)


def stated_shapes() -> dict[str, dict[str, tuple[int, int, int]]]:
    """{classifier: {layer: (C, H, W)}} from METHOD.md's table."""
    table: dict[str, dict[str, tuple[int, int, int]]] = {}
    for model, layer, *shape in ROW.findall(METHOD.read_text(encoding="utf-8")):
        table.setdefault(model, {})[layer] = tuple(int(v) for v in shape)
    return table


def test_the_table_lists_the_family_layers():
    table = stated_shapes()
    assert set(table) == {"resnet50", "vgg16", "resnet18", "vit_b_16"}
    assert {"features.16", "features.23", "features.29", "features.30"} <= set(table["vgg16"])


@pytest.mark.parametrize("model", sorted(stated_shapes()))
@torch.no_grad()
def test_the_stated_shapes_are_what_a_forward_gives(model):
    layers = stated_shapes()[model]
    torch.manual_seed(0)
    classifier = create_classifier(BUILDERS.get(model, model), pretrained=False)
    taps = FeatureTaps(classifier.net, list(layers), num_prefix_tokens=classifier.num_prefix_tokens)
    with taps.capture((224, 224)) as maps:
        classifier(torch.rand(1, 3, 224, 224))
    assert {name: tuple(m.shape[1:]) for name, m in zip(layers, maps)} == layers


def test_the_prose_agrees_with_the_table():
    """Every "`layer` [B, C, H, W]" and "(HxW for ...'s `layer` ...)" of METHOD.md matches the table's shape."""
    text = METHOD.read_text(encoding="utf-8")
    table = stated_shapes()  # the prose names ResNet-50's, VGG-16's and ViT-B/16's layers
    shapes = {**table["resnet50"], **table["vgg16"], **table["vit_b_16"]}
    bracketed = re.findall(r"`([\w.]+)`[^`\[\n]*\[B, (\d+), (\d+), (\d+)\]", text)
    sized = re.findall(r"(\d+)x(\d+) for [\w-]+'s `([\w.]+)`", text)
    vit = shapes["encoder.layers.encoder_layer_11.ln_1"]  # T-TAME's tokens, [B, h, w, D] moved to [B, D, h, w]
    assert f"moved to [B, {vit[0]}, {vit[1]}, {vit[2]}]" in text
    bracketed = [entry for entry in bracketed if entry[0] != "forward_vit_b_16"]
    assert {layer for layer, *_ in bracketed} == {"layer4", "features.29"}
    assert {layer for *_, layer in sized} == {"layer4", "features.29"}
    for layer, *shape in bracketed:
        assert shapes[layer] == tuple(int(v) for v in shape), layer
    for height, width, layer in sized:
        assert shapes[layer][1:] == (int(height), int(width)), layer
