"""A model's layers that produce feature maps, with shapes and parameter counts (offline, random weights do).

The CLI is ``tame-inspect`` / ``tame inspect`` (:mod:`tame.commands.inspect`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from tame.errors import TameError
from tame.models.attention import build_attention
from tame.models.registry import Classifier
from tame.registry import close_matches


@dataclass
class LayerInfo:
    name: str
    shape: tuple[int, int, int]  # C, H, W of the feature map
    params: int
    depth: int  # dots in the name
    order: int  # when its output was produced
    input_hw: tuple[int, int] | None  # spatial size of its input, when it was a map
    passthrough: bool  # returns its input unchanged (Identity, in-place activations)


def feature_layers(classifier: Classifier, input_size: int = 224) -> list[LayerInfo]:
    """Every named module whose output is a feature map (or, for ViTs, a patch-token sequence) at ``input_size``."""
    net = classifier.net
    prefix = classifier.num_prefix_tokens
    tokens_allowed = hasattr(net, "patch_embed")
    found: dict[str, LayerInfo] = {}
    handles = []

    def hook(name: str, module: nn.Module):
        def record(_module, inputs, output) -> None:
            if isinstance(output, (tuple, list)):
                output = output[0] if output and isinstance(output[0], torch.Tensor) else None
            if not isinstance(output, torch.Tensor) or name in found:
                return
            shape = None
            if output.dim() == 4 and output.shape[-2] == output.shape[-1]:  # square input -> square maps
                shape = tuple(output.shape[1:])
            elif output.dim() == 3 and tokens_allowed:
                patches = output.shape[1] - prefix
                side = math.isqrt(patches) if patches > 0 else 0
                if side * side == patches and patches > 1:
                    shape = (output.shape[2], side, side)
            if shape is None:
                return
            first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
            input_hw = tuple(first.shape[-2:]) if first is not None and first.dim() == 4 else None
            params = sum(p.numel() for p in module.parameters())
            found[name] = LayerInfo(name, shape, params, name.count("."), len(found), input_hw, output is first)

        return record

    for name, module in net.named_modules():
        if name:
            handles.append(module.register_forward_hook(hook(name, module)))
    try:
        with torch.no_grad():
            classifier(torch.zeros(1, 3, input_size, input_size))
    finally:
        for handle in handles:
            handle.remove()
    return sorted(found.values(), key=lambda info: info.order)


def default_layers(layers: list[LayerInfo], count: int = 3) -> list[str]:
    """Three stages of decreasing resolution: for each of the smallest resolutions above 1x1, the shallowest
    module producing it (the first such, i.e. the one that down-samples), skipping whole trunks (modules whose
    input is more than 2x larger than their output) and pass-throughs. Single-resolution models (ViTs): of the
    longest run of sibling blocks, the ones at 1/2, 3/4 and the end."""
    maps = [info for info in layers if info.shape[1] * info.shape[2] > 1 and not info.passthrough]
    if not maps:
        return []
    resolutions = sorted({info.shape[1:] for info in maps}, key=lambda hw: hw[0] * hw[1])
    if len(resolutions) == 1:
        siblings: dict[str, list[LayerInfo]] = {}
        for info in maps:
            if info.params > 0:
                siblings.setdefault(info.name.rpartition(".")[0], []).append(info)
        blocks = max(siblings.values(), key=len)
        picks = sorted({len(blocks) // 2, (3 * len(blocks)) // 4, len(blocks) - 1})
        return [blocks[i].name for i in picks]
    chosen = []
    for hw in sorted(resolutions[:count], key=lambda hw: -(hw[0] * hw[1])):
        candidates = [info for info in maps if info.shape[1:] == hw and not _is_trunk(info)]
        if candidates:
            shallowest = min(info.depth for info in candidates)
            chosen.append(next(info.name for info in candidates if info.depth == shallowest))
    return chosen


def _is_trunk(info: LayerInfo) -> bool:
    return info.input_hw is not None and info.input_hw[0] > 2 * info.shape[1]


def chosen_layers(classifier: Classifier, layers: list[LayerInfo], names: list[str], model: str) -> list[LayerInfo]:
    """The :class:`LayerInfo` of each of ``names``; an unknown layer or one without a feature map is a
    :class:`TameError` with the closest names."""
    by_name = {info.name: info for info in layers}
    modules = dict(classifier.net.named_modules())
    for name in names:
        if name not in modules:
            close = close_matches(name, list(by_name) or list(modules), cutoff=0.5)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise TameError(f"unknown layer {name!r} in {model}{hint}")
        if name not in by_name:
            raise TameError(f"layer {name!r} does not produce a feature map (pick one listed above)")
    return [by_name[name] for name in names]


def attention_for(classifier: Classifier, chosen: list[LayerInfo], version: str) -> tuple[nn.Module, int]:
    """The AM ``version`` over the ``chosen`` layers (random weights) and the classifier's number of classes."""
    num_classes = getattr(classifier.net, "num_classes", None) or 1000
    return build_attention(version, [i.shape[0] for i in chosen], num_classes, chosen[0].shape[1:]), num_classes
