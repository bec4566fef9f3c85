"""The allowed values of every choice, declared once as ``Literal`` aliases.

The config's fields are typed with them (:func:`tame.config.validate` reads them through ``typing.get_args``), and
the code that takes the same option (``TameModel``, the feature taps, the loaders, the preprocessing, the CLI's
``choices=``) checks against the same alias: one list per choice.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from tame.errors import TameError

TokenTransform = Literal["drop", "class_weighted"]  # ViT tokens -> map: drop prefix tokens | x class token (T-TAME)
Backend = Literal["dali", "torch", "auto"]  # the data loader (auto: DALI where available)
ListValidation = Literal["none", "cheap", "decode"]  # list validation before a run
Interpolation = Literal["bilinear", "bicubic"]  # the eval resize (antialiased)
Regulariser = Literal["batch", "diagonal"]  # docs/METHOD.md, "The loss"
LabelSource = Literal["model", "list"]
BackboneMode = Literal["eval", "train"]  # train reproduces the reference
Device = Literal["auto", "cuda", "cpu"]
Amp = Literal["auto", "bf16", "fp16", "off"]
Wandb = Literal["online", "offline", "disabled"]
MaskSpace = Literal["pixels", "normalised"]  # where the training mask multiplies the image (tame.models.versions)
MaskSpaceSetting = Literal["auto", MaskSpace]  # train.mask_space; auto: the version's
Schedule = Literal["one_cycle", "epoch_decay"]  # train.schedule (tame.engine.optim)
Optimizer = Literal["sgd", "adamw"]  # train.optimizer (tame.engine.optim; adamw: P-TAME's)
ExportFormat = Literal["onnx", "torchscript", "exported-program"]  # export.format (tame.export.exporters.FORMATS)
InputDtype = Literal["uint8", "float"]  # export.input_dtype: the exported graph's images (tame.export.graph)


def allowed(alias: Any) -> tuple[str, ...]:
    """The allowed values of a ``Literal`` alias above (``allowed(Interpolation)``: bilinear, bicubic)."""
    return typing.get_args(alias)


def check_choice(value: Any, alias: Any, what: str) -> None:
    """A TameError ``{what}: 'x' is not one of a, b`` unless ``value`` is one of ``alias``'s values."""
    if value not in allowed(alias):
        raise TameError(f"{what}: {value!r} is not one of {', '.join(allowed(alias))}")
