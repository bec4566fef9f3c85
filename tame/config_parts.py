"""Parts of the run configuration (:mod:`tame.config`): the nested sections ``model.features`` and ``train.loss``,
and the momentum keys' check.

The sections are read, overridden (``model.features.name=...``, ``train.loss.ce=0.2``) and validated by
:mod:`tame.config` like every other key; they live here only to keep that module within the size rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tame.errors import TameError


@dataclass
class FeaturesConfig:
    """``model.features``: an auxiliary network whose feature maps the AM reads (P-TAME); no name: the classifier's
    own, at ``model.layers``. The explained classifier is then only called on images and masked images."""

    name: str | None = None  # as model.name (timm, registered, module:function), e.g. torchvision.models:resnet18
    pretrained: bool = True
    weights: str | None = None  # local state dict of the auxiliary network
    num_classes: int | None = None  # its head's classes (for a weights file with another head); None: its default
    layers: list[str] = field(default_factory=list)  # its tapped layers, finest first (P-TAME: layer1..layer4)
    mean: list[float] | None = None  # its own normalisation; null/auto: the network's (ImageNet's with a warning)
    std: list[float] | None = None


@dataclass
class LossConfig:
    """``train.loss``: coefficients of the loss (tame.models.loss.LossWeights); null/auto: the version's."""

    ce: float | None = None
    area: float | None = None
    variation: float | None = None
    area_power: float | None = None
    border_penalty: float | None = None


def check_momentum(train) -> None:
    """0 <= momentum < 1 for every momentum key; Nesterov needs momentum > 0 (every one the run uses)."""
    keys = ["momentum"] + (["base_momentum", "max_momentum"] if train.cycle_momentum else [])
    for key in keys:
        value = getattr(train, key)
        if not 0 <= value < 1:
            raise TameError(f"config key train.{key}: must be in [0, 1), got {value!r}")
        if train.nesterov and value == 0:
            raise TameError(
                f"config key train.{key}: Nesterov momentum needs a momentum > 0, got {value!r} "
                "(or set train.nesterov=false for plain SGD)"
            )
    if train.cycle_momentum and train.base_momentum > train.max_momentum:
        raise TameError(
            f"config key train.base_momentum: {train.base_momentum!r} is larger than "
            f"train.max_momentum={train.max_momentum!r}"
        )
