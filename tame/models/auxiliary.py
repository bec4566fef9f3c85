"""The auxiliary feature network (``model.features``, P-TAME): a second frozen network whose feature maps the AM reads.

P-TAME (IDT-ITI/P-TAME) explains a classifier it only calls on images and masked images: the feature maps come from
another network (ResNet-18's layer1..layer4 in their runs) with its own normalisation, so a ViT, or any model whose
layers nobody wants to pick, is explained without taps on it. The auxiliary network is a :class:`Classifier` like
the explained one (frozen, eval mode, takes images in [0, 1] and normalises inside); its logits are not used.

A checkpoint records it under the meta key ``features`` (name, layers, weights file, normalisation), so ``tame
compare`` and ``load_attention`` rebuild or check the same network.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from tame.errors import TameError
from tame.models.preprocessing import Preprocessing
from tame.models.registry import Classifier, create_classifier

META_KEY = "features"
RANDOM_SEED = 0  # of an auxiliary network with random weights


def feature_network(
    name: str,
    *,
    pretrained: bool = True,
    weights: str | None = None,
    num_classes: int | None = None,
    mean=None,
    std=None,
    sizes: Preprocessing | None = None,
) -> Classifier:
    """The frozen auxiliary network ``name`` (any name ``model.name`` takes); ``sizes``: the explained classifier's
    preprocessing, whose resize, crop and interpolation it shares (it sees the same images).

    Random weights (not ``pretrained``, no ``weights`` file: tests, offline runs) are drawn from seed
    :data:`RANDOM_SEED` whatever the global RNG's state, so training, evaluation, ``tame compare`` and export build
    the same network from the same record."""
    preprocessing = {} if sizes is None else {k: getattr(sizes, k) for k in ("resize", "crop", "interpolation")}
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            return create_classifier(
                name, pretrained=pretrained, weights=weights, num_classes=num_classes, mean=mean, std=std,
                preprocessing=preprocessing,
            )  # fmt: skip
    except TameError as err:
        raise TameError(f"model.features: {err}") from None


def feature_network_from_config(model_cfg, sizes: Preprocessing | None = None) -> Classifier | None:
    """The auxiliary network of ``Config.model`` (``model.features``), or None when the AM reads the classifier."""
    features = getattr(model_cfg, "features", None)
    if features is None or not features.name:
        return None
    return feature_network(
        features.name, pretrained=features.pretrained, weights=features.weights, num_classes=features.num_classes,
        mean=features.mean, std=features.std, sizes=sizes,
    )  # fmt: skip


def tapped_layers(model_cfg) -> list[str]:
    """The layers the AM reads: ``model.features.layers`` with an auxiliary network, else ``model.layers``."""
    features = getattr(model_cfg, "features", None)
    return list(features.layers) if features is not None and features.name else list(model_cfg.layers)


def features_meta(network: Classifier, layers: list[str], origin: Mapping | None = None) -> dict:
    """What a checkpoint records of the auxiliary network (meta key ``features``); ``origin``: its ``pretrained``,
    ``weights`` and ``num_classes`` config values."""
    origin = {"pretrained": True, "weights": None, "num_classes": None, **(origin or {})}
    return {"name": network.name, "layers": list(layers), **origin, **network.preprocessing.as_dict()}


def network_from_meta(meta: Mapping, sizes: Preprocessing | None = None) -> Classifier | None:
    """The auxiliary network a checkpoint's meta records (None when it has none), with the recorded weights: the
    local file, else pretrained or random as trained."""
    saved = meta.get(META_KEY)
    if not saved:
        return None
    return feature_network(
        saved["name"], pretrained=saved.get("pretrained", True), weights=saved.get("weights"),
        num_classes=saved.get("num_classes"), mean=saved["mean"], std=saved["std"], sizes=sizes,
    )  # fmt: skip


def check_feature_source(version: str, needs_features: bool, network: Classifier | None) -> None:
    """A TameError when ``version`` reads an auxiliary network's features (P-TAME) and none is given."""
    if needs_features and network is None:
        raise TameError(
            f"version {version} reads an auxiliary network's features: set model.features.name (e.g. "
            "torchvision.models:resnet18) and model.features.layers"
        )


def check_features_meta(meta: Mapping, network: Classifier | None, path) -> None:
    """A TameError when checkpoint ``path`` (its ``meta``) was trained on another feature source than ``network``."""
    saved = (meta.get(META_KEY) or {}).get("name")
    have = network.name if network is not None else None
    if saved != have and (saved is not None or META_KEY in meta):
        trained = f"auxiliary network {saved!r}" if saved else "the classifier's own features"
        using = f"auxiliary network {have!r}" if have else "the classifier's own features"
        raise TameError(f"checkpoint {path} was trained on {trained}, this model reads {using} (model.features.name)")
