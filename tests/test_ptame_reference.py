"""P-TAME against the authors' own code (the ``ptame`` package, test extra ``reference``).

The same random auxiliary ResNet-18 (torchvision's, layer1..layer4), the same random tiny timm ViT as the explained
classifier, the same AM weights and the same images at 64 px: ptame's ``PtamePipeline`` (``PTAMEAttention`` with
``fuser_bias: false``, ``norm_resize_mask``, ``random_map_select`` for the loss, ``single_map_select`` for the mask,
``ClassicLoss`` with each table-1 config's coefficients) and tame's ``TameModel(version="P-TAME", feature_net=...)``
give the same class maps, masked images, loss terms, gradients and evaluation maps (<= 1e-5). At 256 px the first
tapped map (layer1) is 64x64, above TAME's cap of 56, which P-TAME does not have: both sides give 64x64 maps.

Nothing is downloaded: ``ptame_attention`` builds ``resnet18(weights="DEFAULT")`` as a default argument when it is
imported, so ``torchvision.models.resnet18`` is patched to random weights for that import, TORCH_HOME points at an
empty folder and any download attempt raises. The imported ptame modules are dropped from ``sys.modules`` afterwards.
"""

from __future__ import annotations

import copy
import importlib
import sys

import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision

from tame.models import Classifier, TameModel
from tame.models.loss import LossWeights
from tame.models.maps import min_max_normalise

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # ptame's norm() hard-codes these
LAYERS = ["layer1", "layer2", "layer3", "layer4"]
SIZE, CLASSES, BATCH = 64, 10, 6
LARGE = 256  # layer1 at 64x64: above TAME's 56 cap
# (ce, area, smoothness, border penalty, area power) of configs/experiment/tab1_{resnet50,vgg16,vit_b_16}.yaml
RECIPES = {
    "resnet50": (0.16142940055382465, 0.8385705994463174, 0.0, 0.3, 0.3),
    "vgg16": (0.07278, 0.977712, 0.0001, 0.3, 0.3),
    "vit_b_16": (0.13129188542479736, 0.8385705994463174, 0.0, 0.0, 0.5),
}
PTAME_MODULES = ("attention.ptame_attention", "ptame_pipeline", "loss")


def _no_download(*args, **kwargs):
    raise AssertionError(f"a test tried to download {args[:1]}")


@pytest.fixture(scope="module")
def ptame(tmp_path_factory):
    """ptame's P-TAME modules, imported with random ResNet-18 weights and downloads made impossible."""
    before = set(sys.modules)
    random_resnet18 = torchvision.models.resnet18
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
        patch.setattr(torch.hub, "download_url_to_file", _no_download)
        patch.setattr(torchvision.models, "resnet18", lambda *a, **k: random_resnet18(weights=None))
        modules = {name: importlib.import_module(f"ptame.models.components.{name}") for name in PTAME_MODULES}
        masking = importlib.import_module("ptame.utils.masking_utils")
    yield modules, masking
    for name in set(sys.modules) - before:  # other tests import ptame without the P-TAME modules
        if name.startswith("ptame"):
            del sys.modules[name]


def _networks(seed: int = 0, size: int = SIZE) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(explained classifier: a tiny timm ViT, auxiliary: torchvision's ResNet-18), random weights, eval mode."""
    torch.manual_seed(seed)
    vit = timm.create_model("test_vit", pretrained=False, num_classes=CLASSES, img_size=size)
    aux = torchvision.models.resnet18(weights=None)
    for module in aux.modules():  # non-trivial BatchNorm statistics
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return vit.eval(), aux.eval()


def _pair(ptame, recipe: str, size: int = SIZE):
    """(their pipeline, their loss, our model) over copies of the same networks and the same AM weights."""
    modules, masking = ptame
    vit, aux = _networks(size=size)
    attention = modules["attention.ptame_attention"].PTAMEAttention(
        model={"model": copy.deepcopy(aux), "layers": list(LAYERS)},
        input_dim=[2, 3, size, size],
        fuser_bias=False,
        num_classes=CLASSES,
    )
    theirs = modules["ptame_pipeline"].PtamePipeline(
        backbone=copy.deepcopy(vit),
        attention=attention,
        masking_procedure=masking.norm_resize_mask(),
        train_map_select=masking.random_map_select,
        matching_map_select=masking.single_map_select,
        return_keys=["logits", "maps", "masks", "masked_images", "logits_masked", "targets"],
    )
    ce, area, smooth, border, power = RECIPES[recipe]
    loss = modules["loss"].ClassicLoss(
        ce_coeff=ce, area_coeff=area, smoothness_coeff=smooth, smoothness_border_penalty=border, area_loss_power=power
    )
    weights = LossWeights(ce=ce, area=area, variation=smooth, border_penalty=border, area_power=power)
    classifier, feature_net = (Classifier(net, name, *IMAGENET) for net, name in ((vit, "test_vit"), (aux, "resnet18")))
    ours = TameModel(  # backbone_mode "train": Lightning's model.train() reaches both frozen networks in ptame
        classifier, LAYERS, "P-TAME", input_size=size, feature_net=feature_net, loss_weights=weights,
        backbone_mode="train",
    )  # fmt: skip
    torch.manual_seed(1)
    for param in ours.attention.parameters():  # away from the initial values, BatchNorm included
        param.data.uniform_(-0.1, 0.1)
    missing, unexpected = theirs.attention.load_state_dict(ours.attention.state_dict(), strict=False)
    assert not unexpected and all(key.startswith("attention.") for key in missing)  # only their frozen extractor
    return theirs, loss, ours


def _images(seed: int = 2, size: int = SIZE) -> torch.Tensor:
    return torch.rand(BATCH, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _normalise(images: torch.Tensor) -> torch.Tensor:
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in IMAGENET)
    return (images - mean) / std


@pytest.mark.parametrize("size", [SIZE, LARGE])
def test_the_head_matches_ptames_attention(ptame, size):
    theirs, _, ours = _pair(ptame, "resnet50", size)
    assert theirs.attention.fuser.bias is None and ours.attention.fuser.bias is None
    assert ours.attention.size == (size // 4, size // 4) == (theirs.attention.resolution,) * 2  # no cap at 56
    images = _images(size=size)
    ours.train()
    theirs.attention.train()
    theirs.attention.attention.eval()  # the auxiliary network in eval mode on both sides (train mode: next test)
    _, features = ours.features(images)
    their_features = theirs.attention.attention(_normalise(images))[1]
    assert [tuple(f.shape) for f in features] == [tuple(f.shape) for f in their_features]
    for mine, their in zip(features, their_features):
        torch.testing.assert_close(mine, their, atol=1e-5, rtol=1e-5)
    their_maps = theirs.attention(_normalise(images))  # sigmoid(c) [B, K, size / 4, size / 4]
    torch.testing.assert_close(torch.sigmoid(ours.attention(features)), their_maps, atol=1e-5, rtol=1e-5)
    classes = torch.tensor([3, 1, 4, 1, 5, 9])  # the class-selective path: the same maps as all K, selected
    selected = torch.sigmoid(ours.attention(features, classes))
    torch.testing.assert_close(selected, their_maps[:, classes], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("recipe", "size"), [*((r, SIZE) for r in sorted(RECIPES)), ("resnet50", LARGE)])
def test_training_step_matches_ptames_pipeline(ptame, recipe, size):
    """Masked images, loss terms and the gradients of every AM parameter."""
    theirs, loss, ours = _pair(ptame, recipe, size)
    images = _images(size=size)
    theirs.train()
    out = theirs(_normalise(images))
    their_terms = loss(logits_masked=out["logits_masked"], targets=out["targets"], masks=out["masks"])
    their_terms[0].backward()

    seen = {}
    original = ours.masked_forward

    def recording(masks, imgs):
        seen["masked"] = ours.classifier.normalise(masks * imgs)
        return original(masks, imgs)

    ours.masked_forward = recording
    terms = ours.train().training_step(images)
    terms["loss"].backward()
    torch.testing.assert_close(seen["masked"], out["masked_images"], atol=1e-5, rtol=1e-5)
    for name, their in zip(("loss", "ce", "area", "var"), their_terms):
        if name == "var" and loss.smoothness_coeff == 0:
            continue  # ptame returns a placeholder 0 for a term whose coefficient is 0; ours is reported anyway
        torch.testing.assert_close(terms[name], their.float().reshape(()), atol=1e-5, rtol=1e-5, msg=name)
    their_params = dict(theirs.attention.named_parameters())
    for name, param in ours.attention.named_parameters():
        torch.testing.assert_close(param.grad, their_params[name].grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("size", [SIZE, LARGE])
def test_evaluation_maps_match_ptame(ptame, size):
    """Eval mode: their per-map min-max of the predicted class's map equals ours, at the AM's size and resized."""
    theirs, _, ours = _pair(ptame, "resnet50", size)
    images = _images(3, size)
    theirs.eval()
    out = theirs(_normalise(images))
    ours.eval()
    explanation = ours.explain(images)
    torch.testing.assert_close(explanation.classes, out["targets"])
    _, features = ours.features(images)
    raw = ours.attention(features, explanation.classes, per_image=True)  # [B, 1, size / 4, size / 4]
    torch.testing.assert_close(min_max_normalise(raw), out["masks"], atol=1e-5, rtol=1e-5)
    resized = F.interpolate(out["masks"], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(explanation.maps, resized, atol=1e-5, rtol=1e-5)
