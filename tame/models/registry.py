"""Backbone registry: any timm model, a name registered with :func:`register_backbone`, or ``module:function``.

``create_classifier(name)`` returns a frozen :class:`Classifier` in eval mode that takes images in [0, 1]
and applies its own normalisation; ``classifier.preprocessing`` is the model's resolved eval transform
(see :mod:`tame.models.preprocessing`: the ``pretrained_cfg``, ImageNet's values with a warning otherwise).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tame.errors import TameError
from tame.io import load_tensor_file
from tame.models.preprocessing import KEYS, Preprocessing, resolve_preprocessing
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
    ``preprocessing`` the eval transform it expects (None: ``mean``/``std`` with ImageNet's sizes).
    """

    def __init__(
        self,
        net: nn.Module,
        name: str,
        mean: Sequence[float],
        std: Sequence[float],
        preprocessing: Preprocessing | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.name = name
        self.preprocessing = preprocessing or Preprocessing(tuple(mean), tuple(std), 256, 224, "bilinear")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    @property
    def num_prefix_tokens(self) -> int:
        """Class/register tokens in front of a ViT's patch tokens (0 for CNNs)."""
        return int(getattr(self.net, "num_prefix_tokens", 0))

    def freeze(self) -> None:
        self.net.requires_grad_(False)
        self.eval()

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, 3, H, W] in [0, 1] -> the network's input."""
        return (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: [B, 3, H, W] in [0, 1] -> logits [B, K]."""
        return self.net(self.normalise(images))


def create_classifier(
    name: str,
    *,
    pretrained: bool = True,
    weights: str | Path | None = None,
    num_classes: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    preprocessing: Mapping[str, Any] | None = None,
) -> Classifier:
    """Build a frozen classifier by name.

    ``name``: a registered name, ``package.module:function`` (called as ``function(pretrained=...)``), or a timm
    model name with an optional pretrained tag (``resnet50.tv_in1k``). ``weights``: a local state-dict file
    loaded instead of a download (``.pth``, ``.pt``, ``.safetensors``; loaded without executing pickled code).
    ``mean``/``std``, then ``preprocessing`` (known values of ``tame.models.preprocessing.KEYS``), then the
    model's ``pretrained_cfg`` make ``classifier.preprocessing``; a fallback to ImageNet's values is logged as a
    warning (about mean/std only, unless ``preprocessing`` is given).
    """
    use_download = pretrained and weights is None
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
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
    return Classifier(net, name, resolved.mean, resolved.std, resolved)


def _build_from_path(name: str, pretrained: bool, kwargs: dict) -> nn.Module:
    module_name, _, attr = name.partition(":")
    try:
        builder = getattr(importlib.import_module(module_name), attr)
    except ImportError as err:
        raise TameError(f"backbone {name!r}: cannot import {module_name} ({err})") from None
    except AttributeError:
        raise TameError(f"backbone {name!r}: {module_name} has no attribute {attr!r}") from None
    try:
        return builder(pretrained=pretrained, **kwargs)
    except TypeError:
        return builder(**kwargs)


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
    state = load_tensor_file(path)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state.get(key), dict):
            state = state[key]
            break
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    check_state_dict(net.state_dict(), state, f"weights file {path}")
    check_finite(state, f"weights file {path}", "the classifier's weights are unusable")
    net.load_state_dict(state)


def check_finite(values: Mapping[str, Any], what: str, consequence: str) -> None:
    """Raise a TameError naming the first tensor or number in ``values`` (nested dicts and lists; dotted names)
    that holds NaN or Inf: ``{what}: tensor NAME holds N NaN/Inf values of M; {consequence}``."""
    for name, value in _leaves(values, ""):
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise TameError(f"{what}: tensor {name} holds {bad} NaN/Inf value(s) of {value.numel()}; {consequence}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise TameError(f"{what}: {name} is {value}; {consequence}")


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, (list, tuple)) else None
    if items is None:
        yield prefix.rstrip("."), node
        return
    for key, value in items:
        yield from _leaves(value, f"{prefix}{key}.")


def check_state_dict(expected: dict, given: dict, what: str) -> None:
    """Raise a TameError naming missing/unexpected keys and shape mismatches."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in given and given[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch {_few(shapes)} (file vs model)")
    if problems:
        raise TameError(f"{what} does not fit the model: {'; '.join(problems)}")


def _few(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")
