"""Each model's own preprocessing (mean, std, resize, crop, interpolation), resolved once and saved with the AM.

Per key, the first source that sets it wins (timm's precedence: arguments > model config > defaults, all in
:func:`resolve_preprocessing`): explicit values (the config: ``model.mean/std``, ``data.resize/crop/interpolation``;
null or ``auto`` means "not set"; then a checkpoint's saved preprocessing), the model's ``pretrained_cfg`` read
through timm's ``resolve_data_config``, and last :data:`DEFAULT` (ImageNet's) with a warning.
timm models carry a ``pretrained_cfg``; any module may, so a ``module:function`` builder can declare its own::

    net.pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "input_size": (3, 224, 224),
                          "crop_pct": 0.875, "interpolation": "bilinear"}

``crop`` is ``input_size[-1]``, ``resize = floor(crop / crop_pct)`` (as timm computes its eval resize).
:func:`tame.models.registry.build_classifier` resolves a config's auto values from the classifier it builds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from tame.checkpoint.format import read_attention_file
from tame.config import check_mean_std
from tame.config.choices import Interpolation, check_choice
from tame.errors import TameError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_CROP_PCT = 0.875  # resize 256 for crop 224
KEYS = ("mean", "std", "resize", "crop", "interpolation")
_MEAN_STD = ("mean", "std")
_FROM_MODEL = (
    "its pretrained_cfg mean (set model.mean to override it)",
    "its pretrained_cfg std (set model.std to override it)",
)
# what a missing key is called in the config and in a module's pretrained_cfg
_WHERE = {
    "mean": ("model.mean", "mean"),
    "std": ("model.std", "std"),
    "resize": ("data.resize", "crop_pct"),
    "crop": ("data.crop", "input_size"),
    "interpolation": ("data.interpolation", "interpolation"),
}


@dataclass(frozen=True)
class Preprocessing:
    """The eval transform of one model: shorter side to ``resize`` (``interpolation``), centre ``crop``, then
    ``(x - mean) / std`` on values in [0, 1]."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: int
    crop: int
    interpolation: str

    def with_sizes(
        self, resize: int | None = None, crop: int | None = None, interpolation: str | None = None
    ) -> Preprocessing:
        """This transform with the given sizes / interpolation (None: this one's). A ``crop`` given without a
        ``resize`` keeps this transform's resize-to-crop ratio (its ``crop_pct``): 64 -> 73 for 256/224."""
        if resize is None and crop is not None:
            resize = math.floor(crop * self.resize / self.crop)
        sizes = {"resize": resize, "crop": crop, "interpolation": interpolation}
        return dataclasses.replace(self, **{key: value for key, value in sizes.items() if value is not None})

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Preprocessing:
        mean, std = tuple(float(v) for v in values["mean"]), tuple(float(v) for v in values["std"])
        if len(mean) != 3 or len(std) != 3:
            raise TameError(f"expected 3-channel mean/std, got {mean} / {std}")
        interpolation = str(values["interpolation"])
        check_choice(interpolation, Interpolation, "interpolation")
        resize, crop = int(values["resize"]), int(values["crop"])
        if not 0 < crop <= resize:
            raise TameError(
                f"data.crop {crop} is not in 1..data.resize={resize} (the resolved preprocessing: the config's values "
                "over a checkpoint's saved ones and the model's)"
            )
        return cls(mean, std, resize, crop, interpolation)


def default_resize(crop: int) -> int:
    """The resize of ``crop`` with ImageNet's ``crop_pct`` (256 for 224): ``floor(crop / 0.875)``."""
    return math.floor(crop / IMAGENET_CROP_PCT)


# The one default: ImageNet's eval transform, used where neither the arguments nor the model set a key.
DEFAULT = Preprocessing(IMAGENET_MEAN, IMAGENET_STD, default_resize(224), 224, "bilinear")
_DEFAULTS: dict[str, Any] = {  # DEFAULT as resolve_preprocessing reads it: the resize follows a given crop
    **{key: getattr(DEFAULT, key) for key in ("mean", "std", "crop", "interpolation")},
    "crop_pct": IMAGENET_CROP_PCT,
}


def model_values(net: nn.Module) -> dict[str, Any]:
    """The preprocessing keys the module's ``pretrained_cfg`` sets (``crop_pct`` kept for the resize)."""
    cfg = dict(getattr(net, "pretrained_cfg", None) or getattr(net, "default_cfg", None) or {})
    if not cfg:
        return {}
    from timm.data import resolve_data_config

    resolved = resolve_data_config(pretrained_cfg=cfg)
    found: dict[str, Any] = {key: tuple(resolved[key]) for key in ("mean", "std") if cfg.get(key)}
    if cfg.get("input_size"):
        found["crop"] = int(resolved["input_size"][-1])
    if cfg.get("crop_pct"):
        found["crop_pct"] = float(resolved["crop_pct"])
    if cfg.get("interpolation"):
        found["interpolation"] = "bicubic" if resolved["interpolation"] == "bicubic" else "bilinear"
    return found


def resolve_preprocessing(
    net: nn.Module, name: str, given: Mapping[str, Any] | None = None, *, warn_keys: tuple[str, ...] = KEYS
) -> tuple[Preprocessing, list[str]]:
    """(preprocessing, keys that fell back to ImageNet's defaults): ``given`` (non-None values) over the model's.

    Warns once, naming the keys to set, when any of ``warn_keys`` fell back.
    """
    given = {key: value for key, value in (given or {}).items() if value is not None}
    model = model_values(net)
    check_mean_std(given.get("mean"), given.get("std"), "mean", "std")
    own = {key: model[key] for key in _MEAN_STD if key in model and key not in given}  # the given ones replace these
    check_mean_std(own.get("mean"), own.get("std"), *_FROM_MODEL)
    values = {**_DEFAULTS, **model, **given}
    if "resize" not in values:
        values["resize"] = math.floor(values["crop"] / values["crop_pct"])
    missing = [key for key in KEYS if key not in given and key not in model and not _derived(key, model)]
    fallback = [key for key in missing if key in warn_keys]
    if fallback:
        log.warning(
            "model %s sets no %s: using ImageNet's (%s); set %s in the config, or give the module a pretrained_cfg "
            "dict with %s (see tame.models.preprocessing)",
            name,
            "/".join(fallback),
            ", ".join(f"{key} {_show(values[key])}" for key in fallback),
            ", ".join(_WHERE[key][0] for key in fallback),
            ", ".join(dict.fromkeys(_WHERE[key][1] for key in fallback)),
        )
    return Preprocessing.from_dict(values), missing


def _derived(key: str, model: dict) -> bool:
    return key == "resize" and "crop_pct" in model


def _show(value: Any) -> str:
    return "/".join(f"{v:g}" for v in value) if isinstance(value, tuple) else str(value)


def config_values(model_cfg, data_cfg) -> dict[str, Any]:
    """The preprocessing a config sets explicitly (``ModelConfig`` mean/std, ``DataConfig`` sizes); None: not set."""
    return {
        "mean": model_cfg.mean,
        "std": model_cfg.std,
        "resize": data_cfg.resize,
        "crop": data_cfg.crop,
        "interpolation": data_cfg.interpolation,
    }


def checkpoint_preprocessing(path: str | Path) -> dict[str, Any]:
    """The preprocessing saved in an AM checkpoint's meta (empty for files that have none)."""
    _, meta = read_attention_file(path)
    saved = meta.get("preprocessing")
    return {key: saved[key] for key in KEYS if key in saved} if isinstance(saved, dict) else {}


def with_preprocessing(config, preprocessing: Preprocessing):
    """``config`` (a :class:`tame.config.Config`) with all five preprocessing keys set to ``preprocessing``."""
    values = preprocessing.as_dict()
    model = dataclasses.replace(config.model, mean=values["mean"], std=values["std"])
    data = dataclasses.replace(
        config.data, resize=values["resize"], crop=values["crop"], interpolation=values["interpolation"]
    )
    return dataclasses.replace(config, model=model, data=data)


def given_preprocessing(config, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """The preprocessing ``config`` sets explicitly, over the one ``checkpoint`` (an AM file) saved: the arguments
    of :func:`resolve_preprocessing` for the config's model (``tame explain``/``eval`` with their ``--checkpoint``)."""
    given = {key: value for key, value in config_values(config.model, config.data).items() if value is not None}
    if checkpoint is not None and len(given) < len(KEYS):
        saved = {}
        with contextlib.suppress(TameError):  # unreadable: loading its weights says so in full, later
            saved = {key: value for key, value in checkpoint_preprocessing(checkpoint).items() if key not in given}
        check_mean_std(saved.get("mean"), saved.get("std"), *(f"checkpoint {checkpoint}: saved {k}" for k in _MEAN_STD))
        given = {**saved, **given}
    return given
