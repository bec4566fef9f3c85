"""Backbone registry: any timm model, a name registered with :func:`register_backbone`, or ``module:function``.

``create_classifier(name)`` returns a frozen :class:`Classifier` in eval mode that takes images in [0, 1]
and applies its own normalisation; ``classifier.preprocessing`` is the model's resolved eval transform
(see :mod:`tame.models.preprocessing`: the ``pretrained_cfg``, ImageNet's values with a warning otherwise).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tame.checkpoint.format import check_finite, check_state_dict
from tame.errors import TameError
from tame.io import load_tensor_file
from tame.models.preprocessing import (
    DEFAULT,
    KEYS,
    Preprocessing,
    given_preprocessing,
    resolve_preprocessing,
    with_preprocessing,
)
from tame.registry import Registry, close_matches

BackboneBuilder = Callable[..., nn.Module]
BACKBONES: Registry[BackboneBuilder] = Registry("backbone")


def register_backbone(name: str) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator: ``@register_backbone("my_net")`` on ``def build(pretrained: bool, **kwargs) -> nn.Module``."""
    return BACKBONES.register(name)


def list_backbones(pattern: str = "") -> list[str]:
    """Registered names plus timm's model names containing ``pattern`` (timm wildcards allowed)."""
    import timm

    own = sorted(n for n in BACKBONES.names() if pattern.strip("*") in n)
    return own + timm.list_models(pattern if "*" in pattern else f"*{pattern}*" if pattern else "")


class Classifier(nn.Module):
    """A frozen image classifier taking images in [0, 1]; normalises inside.

    ``net`` is the original model (layer names for feature taps are ``net.named_modules()`` names);
    ``preprocessing`` the eval transform it expects (None: ``mean``/``std`` with the default's sizes).
    """

    def __init__(
        self,
        net: nn.Module,
        name: str,
        mean: Sequence[float],
        std: Sequence[float],
        preprocessing: Preprocessing | None = None,
        prefix_tokens: int | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.prefix_tokens = prefix_tokens  # None: what the model tells (:func:`model_prefix_tokens`)
        self.preprocessing = preprocessing or dataclasses.replace(DEFAULT, mean=tuple(mean), std=tuple(std))
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    @property
    def num_prefix_tokens(self) -> int:
        """Class/register tokens in front of a transformer's patch tokens: ``model.prefix_tokens`` when given, else
        what the model tells (:func:`model_prefix_tokens`), else 0 (CNNs)."""
        if self.prefix_tokens is not None:
            return self.prefix_tokens
        return model_prefix_tokens(self.net) or 0

    @property
    def has_tokens(self) -> bool:
        """Whether [B, N, D] outputs are token sequences (a transformer the model or the config describes)."""
        return (
            self.prefix_tokens is not None
            or model_prefix_tokens(self.net) is not None
            or hasattr(self.net, "patch_embed")
        )

    def freeze(self) -> None:
        self.net.requires_grad_(False)
        self.eval()

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, 3, H, W] in [0, 1] -> the network's input."""
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, 3, H, W] in [0, 1] -> logits [B, K]."""
        return self.net(self.normalise(images))


def model_prefix_tokens(net: nn.Module) -> int | None:
    """How many tokens precede the patch tokens, where the model tells: timm's ``num_prefix_tokens``, or the
    ``class_token`` parameter [1, 1, D] of torchvision's ``VisionTransformer`` (index 0 of its sequence); None when
    it tells nothing (set ``model.prefix_tokens`` for other transformers)."""
    if hasattr(net, "num_prefix_tokens"):
        return int(net.num_prefix_tokens)
    class_token = getattr(net, "class_token", None)
    if isinstance(class_token, torch.Tensor) and class_token.dim() == 3:
        return int(class_token.shape[1])
    return None


def classifier_from_config(model_cfg, data_cfg=None, crop: int | None = None) -> Classifier:
    """:func:`create_classifier` for ``Config.model`` (and ``Config.data``'s sizes and interpolation; ``crop``
    overrides the data's)."""
    sizes: dict = {"crop": crop}
    if data_cfg is not None:
        sizes.update(resize=data_cfg.resize, interpolation=data_cfg.interpolation, crop=crop or data_cfg.crop)
    return create_classifier(
        model_cfg.name,
        pretrained=model_cfg.pretrained,
        weights=model_cfg.weights,
        num_classes=model_cfg.num_classes,
        mean=model_cfg.mean,
        std=model_cfg.std,
        preprocessing=sizes,
        prefix_tokens=getattr(model_cfg, "prefix_tokens", None),
        drop_rate=getattr(model_cfg, "drop_rate", None),
    )


def build_classifier(config, checkpoint: str | Path | None = None) -> tuple[Any, Classifier]:
    """(``config`` with every preprocessing key resolved, the classifier ``config.model`` names): built once, weights
    included, and the config's auto values read from it. Per key: the config's value, then ``checkpoint``'s saved
    preprocessing (an AM file), then the model's own, then ImageNet's with a warning
    (:func:`tame.models.preprocessing.resolve_preprocessing`). Pass the classifier on to
    ``TameModel.from_config(..., classifier=...)``; a seed set before this call fixes a weightless classifier."""
    model_cfg = config.model
    classifier = create_classifier(
        model_cfg.name,
        pretrained=model_cfg.pretrained,
        weights=model_cfg.weights,
        num_classes=model_cfg.num_classes,
        preprocessing=given_preprocessing(config, checkpoint),
        prefix_tokens=model_cfg.prefix_tokens,
        drop_rate=model_cfg.drop_rate,
    )
    return with_preprocessing(config, classifier.preprocessing), classifier  # checked when it was resolved


def create_classifier(
    name: str,
    *,
    pretrained: bool = True,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
    prefix_tokens: int | None = None,
    drop_rate: float | None = None,
) -> Classifier:
    """Build a frozen classifier by name.

    ``name``: a registered name, ``package.module:function`` (called as ``function(pretrained=...)``), or a timm
    model name with an optional pretrained tag (``resnet50.tv_in1k``). ``weights``: a local state-dict file
    loaded instead of a download (``.pth``, ``.pt``, ``.safetensors``; loaded without executing pickled code).
    ``mean``/``std``, then ``preprocessing`` (known values of ``tame.models.preprocessing.KEYS``), then the
    model's ``pretrained_cfg`` make ``classifier.preprocessing``; a fallback to ImageNet's values is logged as a
    warning (about mean/std only, unless ``preprocessing`` is given). ``prefix_tokens``: the tokens before a
    transformer's patch tokens (None: what the model tells, see :func:`model_prefix_tokens`). ``drop_rate``: passed
    to the builder (timm's dropout rate; None: its default), active only when the classifier runs in train mode.
    """
    use_download = pretrained and weights is None
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if drop_rate is not None:
        kwargs["drop_rate"] = drop_rate
    if name in BACKBONES:
        net = BACKBONES.get(name)(pretrained=use_download, **kwargs)
    elif ":" in name:
        net = _build_from_path(name, use_download, kwargs)
    else:
        net = _build_timm(name, use_download, kwargs)
    if not isinstance(net, nn.Module):
        raise TameError(f"backbone {name!r}: the builder returned {type(net).__name__}, not an nn.Module")
    if weights is not None:
        load_classifier_weights(net, weights)
    given = {**(preprocessing or {}), **{k: v for k, v in (("mean", mean), ("std", std)) if v}}
    warn_keys = KEYS if preprocessing is not None else ("mean", "std")
    try:
        resolved, _ = resolve_preprocessing(net, name, given, warn_keys=warn_keys)
    except TameError as err:
        raise TameError(f"backbone {name!r}: {err}") from None
    return Classifier(net, name, resolved.mean, resolved.std, resolved, prefix_tokens)


def _build_from_path(name: str, pretrained: bool, kwargs: dict) -> nn.Module:
    """Import ``module:function`` and call it once, with keywords only (``pretrained=...``, ``num_classes=...``).

    Only a Python function (or an ``nn.Module`` class) that accepts these keywords is called: a built-in
    (``os:system``, ``builtins:eval``), a value (``os:sep``) or a function of other arguments (``json:loads``) is
    refused before any call, so nothing from the name, and no user text, ever reaches an arbitrary callable.
    """
    builder = _import_builder(name)
    call = {"pretrained": pretrained, **kwargs}
    if inspect.isclass(builder) and "pretrained" not in _parameters(builder):
        call.pop("pretrained")  # an nn.Module class of its own: random weights unless model.weights is given
    try:
        inspect.signature(builder).bind(**call)
    except (TypeError, ValueError) as err:
        raise TameError(
            f"backbone {name!r}: cannot be called as {_call_text(name, call)} ({err}); a builder is "
            "`def build(pretrained: bool = True, **kwargs) -> nn.Module`"
        ) from None
    try:
        net = builder(**call)
    except Exception as err:  # the user's code: one line, not its traceback
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise TameError(f"backbone {name!r}: {_call_text(name, call)} raised {type(err).__name__}: {first}") from None
    if not isinstance(net, nn.Module):
        raise TameError(
            f"backbone {name!r}: {_call_text(name, call)} returned {_describe(net)}, not an nn.Module "
            "(a builder returns the classifier: images -> logits)"
        )
    return net


def _import_builder(name: str) -> Callable[..., Any]:
    """The callable that ``module:function`` names; anything that is not a model builder is a TameError."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr or ":" in attr:
        raise TameError(f"backbone {name!r}: write package.module:function (e.g. examples.efficientnet_lite0:build)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        hint = (
            f"; run from the folder that holds {module_name.split('.')[0]} with PYTHONPATH=. (or pip install it)"
            if err.name is not None and (module_name + ".").startswith(err.name + ".")
            else ""
        )
        raise TameError(f"backbone {name!r}: cannot import {module_name} ({err}){hint}") from None
    except Exception as err:  # the module's own code failed while importing
        raise TameError(f"backbone {name!r}: importing {module_name} raised {type(err).__name__}: {err}") from None
    if not hasattr(module, attr):
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]
        close = close_matches(attr, public)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise TameError(f"backbone {name!r}: {module_name} has no attribute {attr!r}{hint}")
    builder = getattr(module, attr)
    if inspect.isclass(builder):
        if not issubclass(builder, nn.Module):
            raise TameError(f"backbone {name!r}: class {builder.__name__} is not an nn.Module (nothing was called)")
    elif not (inspect.isfunction(builder) or (inspect.ismethod(builder) and inspect.isfunction(builder.__func__))):
        what = (
            "a built-in function"
            if inspect.isbuiltin(builder)
            else f"a callable {type(builder).__name__}"
            if callable(builder)
            else _describe(builder)
        )
        raise TameError(
            f"backbone {name!r}: {name} is {what}, not a Python function that builds a model (nothing was called)"
        )
    return builder


def _parameters(builder: Callable[..., Any]) -> set[str]:
    try:
        params = inspect.signature(builder).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in params} | ({"pretrained"} if any(p.kind == p.VAR_KEYWORD for p in params) else set())


def _call_text(name: str, call: dict) -> str:
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in call.items())})"


def _describe(value: Any) -> str:
    text = repr(value)
    return f"a {type(value).__name__} ({text[:40] + '...' if len(text) > 40 else text})"


def _build_timm(name: str, pretrained: bool, kwargs: dict) -> nn.Module:
    import timm
    from timm.models import split_model_name_tag

    arch, _tag = split_model_name_tag(name)
    if not timm.is_model(arch):
        close = close_matches(arch, BACKBONES.names() + timm.list_models())
        hint = f"; did you mean {', '.join(close)}?" if close else "; `tame-inspect --list PATTERN` lists names"
        raise TameError(f"unknown model {name!r}{hint}")
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as err:  # timm raises RuntimeError for unknown pretrained tags
        raise TameError(f"model {name!r}: {str(err).splitlines()[0]}") from None
    except (OSError, ConnectionError) as err:
        raise TameError(
            f"model {name!r}: could not download pretrained weights ({type(err).__name__}); "
            "set model.weights=/path/to/file.pth or model.pretrained=false"
        ) from None


def load_classifier_weights(net: nn.Module, path: str | Path) -> None:
    """Load a classifier state dict from a local file; mismatches are reported by key and shape."""
    if not Path(path).is_file():
        raise TameError(f"weights file {path} not found (model.weights / --weights: the classifier's state dict)")
    state = load_tensor_file(path)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    check_state_dict(net.state_dict(), state, f"weights file {path}")
    check_finite(state, f"weights file {path}", "the classifier's weights are unusable")
    net.load_state_dict(state)
