"""The TAME family in one place: every ``model.version`` with its head, masking space and loss (docs/METHOD.md).

A version is what the published code of one method fixes beyond the backbone and its layers:

- ``head``: the attention mechanism (:mod:`tame.models.attention`) that turns the tapped feature maps into K
  class maps;
- ``mask_space``: where the upsampled training mask multiplies the image: ``pixels`` (the image in [0, 1], then
  normalised: TAME, L-CAM-Img) or ``normalised`` (the network's normalised input: T-TAME's ViT run). A config's
  ``train.mask_space`` overrides it (``auto``: the version's);
- ``loss``: the coefficients of :func:`tame.models.loss.tame_loss`;
- ``layers``: how many feature layers the head takes (None: any number);
- ``features``: whether it reads an auxiliary network's feature maps (``model.features``: P-TAME) rather than the
  explained classifier's;
- ``max_resolution``: the cap on the class maps' size S = (min(H_1, cap), min(W_1, cap)) of the first map: 56 for
  TAME and its ablations (``composite_models.py``; T-TAME's ``attention/tame.py`` and ptame's ``TtameAttention``
  alike), None (the first map's own size) for L-CAM-Img (no resize at all) and P-TAME (``PTAMEAttention``:
  ``resolution = ft_size[0][-1]``).

T-TAME is TAME's head with another recipe (token taps, ``mask_space: normalised``, one LR for weights and biases:
``configs/vit_b_16_ttame.yaml``), not a version of its own. Adding a method is one more entry below, or
``register_version`` from outside the package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tame.config.choices import MaskSpace, check_choice
from tame.errors import TameError
from tame.models.attention import (
    MAX_RESOLUTION,
    AttentionMechanism,
    LCamImgAttention,
    NoSkipAttention,
    NoSkipNoBatchNormAttention,
    PTameAttention,
    SigmoidBranchAttention,
    TameAttention,
)
from tame.models.loss import PTAME_WEIGHTS, TAME_WEIGHTS, LossWeights
from tame.registry import Registry


@dataclass(frozen=True)
class Version:
    """One method of the family: see the module docstring for each field."""

    head: type[AttentionMechanism]
    mask_space: MaskSpace = "pixels"
    loss: LossWeights = TAME_WEIGHTS
    layers: int | None = None
    features: bool = False
    max_resolution: int | None = MAX_RESOLUTION
    source: str = ""  # the published code it reproduces

    def __post_init__(self) -> None:
        check_choice(self.mask_space, MaskSpace, "mask_space")


VERSIONS: Registry[Version] = Registry("attention version")


def register_version(name: str, version: Version) -> Version:
    """Add ``name`` to the family (``model.version: NAME``); a name taken already is replaced, with a warning."""
    return VERSIONS.add(name, version)


register_version("TAME", Version(TameAttention, source="bmezaris/TAME (ICIP 2023); T-TAME's ViT run uses it too"))
register_version("Sigmoidinfeaturebranch", Version(SigmoidBranchAttention, source="bmezaris/TAME ablation"))
register_version("Noskipconnection", Version(NoSkipAttention, source="bmezaris/TAME ablation"))
register_version("NoskipNobatchnorm", Version(NoSkipNoBatchNormAttention, source="bmezaris/TAME ablation"))
register_version(
    "L-CAM-Img",
    Version(LCamImgAttention, layers=1, max_resolution=None, source="bmezaris/L-CAM (models/*_L_CAM_Img.py)"),
)
register_version(
    "P-TAME",
    Version(
        PTameAttention,
        loss=PTAME_WEIGHTS,
        features=True,
        max_resolution=None,
        source="IDT-ITI/P-TAME (ptame 1.0.2, IEEE OJSP 2025)",
    ),
)


def list_attention_versions() -> list[str]:
    return VERSIONS.names()


def get_version(name: str) -> Version:
    """The registered version ``name`` (an unknown name is a TameError with the closest names)."""
    return VERSIONS.get(name)


def loss_weights(name: str, overrides: Mapping[str, float | None] | None = None) -> LossWeights:
    """Version ``name``'s loss coefficients with ``overrides`` (a config's ``train.loss``; None values: the
    version's) in their place."""
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    return dataclasses.replace(get_version(name).loss, **given)


def check_layer_count(name: str, layers: Sequence[str]) -> None:
    """A TameError when version ``name`` takes a fixed number of layers and ``layers`` has another."""
    wanted = get_version(name).layers
    if wanted is not None and len(layers) != wanted:
        raise TameError(
            f"config key model.layers: version {name} takes {wanted} layer(s), got {len(layers)} ({' '.join(layers)})"
        )


def build_attention(
    version: str, channels: Sequence[int], num_classes: int, first_hw: tuple[int, int]
) -> AttentionMechanism:
    """The head of ``version`` for feature maps with ``channels`` whose first (largest) map is ``first_hw``, its size
    capped at the version's ``max_resolution``."""
    chosen = get_version(version)
    cap = chosen.max_resolution
    height, width = int(first_hw[0]), int(first_hw[1])
    size = (height, width) if cap is None else (min(height, cap), min(width, cap))
    return chosen.head(list(channels), num_classes, size)
