"""T-TAME's ViT path against the authors' own code (the ``ptame`` package, test extra ``reference``).

Same random torchvision ViT, same AM weights, same images: ptame's T-TAME pipeline (FX feature extractor at the nodes
``encoder.layers.encoder_layer_N.ln``, class token dropped, 14x14 row-major grid, ``TtameAttention``, the mask on the
normalised input, ``ClassicLoss``) and tame's ``TameModel`` (forward hooks on the modules ``...ln_1``,
``mask_space="normalised"``) give the same loss terms, gradients and explanation maps (<= 1e-5).

Nothing is downloaded: only ptame's T-TAME modules are imported (``ptame_attention``, whose default argument builds
``resnet18(weights="DEFAULT")``, is not), and any download attempt while importing raises.
"""

from __future__ import annotations

import copy
import importlib
import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision

from tame.models import Classifier, TameModel

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
BLOCKS = (0, 1, 2)


def _no_download(*args, **kwargs):
    raise AssertionError(f"a test tried to download {args[:1]}")


@pytest.fixture(scope="module")
def ptame():
    """ptame's T-TAME modules, imported with downloads made impossible."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.hub, "download_url_to_file", _no_download)
        modules = {
            name: importlib.import_module(f"ptame.models.components.{name}")
            for name in ("ttame", "attention.ttame_attention", "loss")
        }
        masking = importlib.import_module("ptame.utils.masking_utils")
    assert "ptame.models.components.attention.ptame_attention" not in sys.modules
    return modules, masking


def _vit(seed: int = 0) -> torchvision.models.VisionTransformer:
    """torchvision's ViT class, small: 28 px in 2 px patches is the 14x14 grid ptame's adapter hard-codes."""
    torch.manual_seed(seed)
    net = torchvision.models.VisionTransformer(
        image_size=28, patch_size=2, num_layers=3, num_heads=2, hidden_dim=32, mlp_dim=64, num_classes=10
    )
    # torchvision zero-initialises the head: constant logits, and no CE gradient through the network to compare
    torch.nn.init.normal_(net.heads.head.weight, std=1.0)
    return net.eval()


def _pair(ptame):
    modules, masking = ptame
    net = _vit()
    theirs = modules["ttame"].build_ttame_pipeline(  # their ``build_ttame`` calls the AM without ``features=``
        backbone=copy.deepcopy(net),
        attention=modules["attention.ttame_attention"].TtameAttention,
        masking_procedure=masking.resize_mask(),  # resize, then multiply the (normalised) input
        layers=[f"encoder.layers.encoder_layer_{i}.ln" for i in BLOCKS],
        input_dim=[1, 3, 28, 28],
        num_classes=10,
    )
    classifier = Classifier(net, "tiny_vit", *IMAGENET)
    ours = TameModel(
        classifier,
        [f"encoder.layers.encoder_layer_{i}.ln_1" for i in BLOCKS],
        "TAME",
        input_size=28,
        mask_space="normalised",
    )
    ours.attention.load_state_dict(theirs.attention.state_dict())
    return theirs, ours


def _images(batch: int = 6) -> torch.Tensor:
    return torch.rand(batch, 3, 28, 28, generator=torch.Generator().manual_seed(1))


def test_training_step_loss_terms_and_gradients_equal_ptame(ptame):
    theirs, ours = _pair(ptame)
    images = _images()
    theirs.train()
    out = theirs(ours.classifier.normalise(images))
    loss, ce, area, var = ptame[0]["loss"].ClassicLoss()(out["logits_masked"], out["targets"], out["masks"])
    loss.backward()
    mine = ours.train().training_step(images)
    mine["loss"].backward()
    assert len(set(out["targets"].tolist())) > 1 and ce > 0  # the labels differ: R = a[:, y] is not one map
    for term, value in zip(("loss", "ce", "area", "var"), (loss, ce, area, var)):
        torch.testing.assert_close(mine[term], value, rtol=0, atol=1e-5, msg=term)
    grads = {name: p.grad for name, p in theirs.attention.named_parameters()}
    for name, param in ours.attention.named_parameters():
        torch.testing.assert_close(param.grad, grads[name], rtol=1e-4, atol=1e-5, msg=name)


def test_explanation_maps_equal_ptame(ptame):
    theirs, ours = _pair(ptame)
    images = _images()
    theirs.train()(ours.classifier.normalise(images))  # one training forward: both AMs' BatchNorm statistics move
    ours.train().training_step(images)
    theirs.eval()
    ours.eval()
    explanation = ours.explain(images)
    for index, image in enumerate(ours.classifier.normalise(images)):
        small, prediction = theirs.produce_map(image)  # min-max normalised class map [14, 14]
        assert prediction == explanation.classes[index]
        expected = F.interpolate(small[None, None], size=(28, 28), mode="bilinear", align_corners=False)[0, 0]
        torch.testing.assert_close(explanation.maps[index], expected, rtol=0, atol=1e-5)
