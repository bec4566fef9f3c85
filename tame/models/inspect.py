"""A model's layers that produce feature maps, with shapes and parameter counts (offline, random weights do).

The CLI is ``tame-inspect`` / ``tame inspect`` (:mod:`tame.commands.inspect`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from tame.errors import TameError
from tame.models.registry import Classifier
from tame.models.versions import build_attention
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
    leaf: bool = True  # has no child modules
    reduction: int | None = None  # the stride timm's ``feature_info`` reports for it (None: not listed)

    @property
    def changes_representation(self) -> bool:
        """Not a pass-through, padding, activation or other parameterless leaf that keeps the resolution: a
        block, a layer with weights or a down-sampling (pooling)."""
        if self.passthrough:
            return False
        downsamples = self.input_hw is not None and self.input_hw[0] > self.shape[1]
        return self.params > 0 or not self.leaf or downsamples


def feature_layers(classifier: Classifier, input_size: int = 224) -> list[LayerInfo]:
    """Every named module whose output is a feature map (or, for ViTs, a patch-token sequence) at ``input_size``."""
    net = classifier.net
    prefix = classifier.num_prefix_tokens
    tokens_allowed = classifier.has_tokens
    reductions = timm_reductions(net)
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
            leaf = next(module.children(), None) is None
            passthrough = output is first
            found[name] = LayerInfo(
                name, shape, params, name.count("."), len(found), input_hw, passthrough, leaf, reductions.get(name)
            )

        return record

    for name, module in net.named_modules():
        if name:
            handles.append(module.register_forward_hook(hook(name, module)))
    try:
        with torch.no_grad():
            classifier(torch.zeros(1, 3, input_size, input_size))
    except RuntimeError as err:  # too small for its kernels and poolings, or out of memory
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TameError(f"model {classifier.name!r} cannot run on {input_size}x{input_size} images: {first}") from None
    finally:
        for handle in handles:
            handle.remove()
    return sorted(found.values(), key=lambda info: info.order)


def timm_reductions(net: nn.Module) -> dict[str, int]:
    """``{module name: stride}`` from timm's ``feature_info`` (stage outputs); empty for other models."""
    info = getattr(net, "feature_info", None)
    if not isinstance(info, (list, tuple)):
        return {}
    return {
        d["module"]: int(d["reduction"]) for d in info if isinstance(d, dict) and "module" in d and "reduction" in d
    }


def default_layers(layers: list[LayerInfo], count: int = 3) -> list[str]:
    """Three stage outputs of decreasing resolution, ending at the last feature map.

    timm models: the last ``count`` distinct strides of ``feature_info`` (an entry that is an activation is
    replaced by the stage choice below). Otherwise, among modules that change the representation (no padding,
    identity or activation), for each of the ``count`` smallest resolutions above 1x1: of the sibling sequence
    covering most of these resolutions (the trunk's blocks), the last module at that resolution -- or, when that
    resolution starts with a parameterless pooling (VGG), the pooling. Single-resolution models (ViTs): of the
    longest run of sibling blocks (modules with children), the ones at 1/2, 3/4 and the end.
    """
    maps = [info for info in layers if info.shape[1] * info.shape[2] > 1 and info.changes_representation]
    if not maps:
        return []
    resolutions = sorted({info.shape[1:] for info in maps}, key=lambda hw: hw[0] * hw[1])
    if len(resolutions) == 1:
        return _transformer_blocks(maps)
    targets = sorted(resolutions[:count], key=lambda hw: -(hw[0] * hw[1]))
    stage = dict(zip(targets, _stage_outputs(maps, targets)))
    listed = {info.reduction: info for info in layers if info.reduction is not None}
    if len({info.shape[1:] for info in listed.values()}) >= count:
        picks = [listed[r] for r in sorted(listed)[-count:]]
        return [info.name if info.changes_representation else stage.get(info.shape[1:], info.name) for info in picks]
    return [stage[hw] for hw in targets if hw in stage]


def _transformer_blocks(maps: list[LayerInfo]) -> list[str]:
    siblings: dict[str, list[LayerInfo]] = {}
    for info in maps:
        if info.params > 0:
            siblings.setdefault(info.name.rpartition(".")[0], []).append(info)
    blocks = max(siblings.values(), key=lambda run: (sum(not info.leaf for info in run), len(run)))  # blocks
    picks = sorted({len(blocks) // 2, (3 * len(blocks)) // 4, len(blocks) - 1})
    return [blocks[i].name for i in picks]


def _stage_outputs(maps: list[LayerInfo], targets: list[tuple[int, int]]) -> list[str]:
    """For each target resolution, the stage output (see :func:`default_layers`)."""
    groups: dict[str, list[LayerInfo]] = {}
    for info in maps:
        if not _is_trunk(info):
            groups.setdefault(info.name.rpartition(".")[0], []).append(info)

    def coverage(parent: str) -> tuple[int, int]:
        return len({info.shape[1:] for info in groups[parent]} & set(targets)), -parent.count(".") - bool(parent)

    chosen = []
    for hw in targets:
        having = [parent for parent, members in groups.items() if any(m.shape[1:] == hw for m in members)]
        if not having:
            continue
        members = [m for m in groups[max(having, key=coverage)] if m.shape[1:] == hw]
        first = members[0]
        pooled = first.leaf and first.params == 0 and first.input_hw is not None and first.input_hw[0] > hw[0]
        chosen.append((first if pooled else members[-1]).name)
    return chosen


def _is_trunk(info: LayerInfo) -> bool:
    return info.input_hw is not None and info.input_hw[0] > 2 * info.shape[1]


def layer_problems(classifier: Classifier, layers: list[LayerInfo], names: list[str], model: str) -> list[str]:
    """One line per name of ``names`` that is no layer of the model (with the closest names), produces no feature
    map, or repeats; empty when every name is good."""
    by_name = {info.name: info for info in layers}
    modules = dict(classifier.net.named_modules())
    problems = []
    for index, name in enumerate(names):
        if name not in modules or not name:
            close = close_matches(name, list(by_name) or list(modules), cutoff=0.5)
            hint = f"; closest: {', '.join(close)}" if close else ""
            problems.append(f"unknown layer {name!r} in {model}{hint}")
        elif name not in by_name:
            problems.append(
                f"layer {name!r} does not produce a feature map (`tame-inspect {model}` lists those that do)"
            )
        elif name in names[:index]:
            problems.append(f"layer {name!r} is named twice")
    return problems


def chosen_layers(classifier: Classifier, layers: list[LayerInfo], names: list[str], model: str) -> list[LayerInfo]:
    """The :class:`LayerInfo` of each of ``names``; unknown layers, layers without a feature map and repeats are one
    :class:`TameError` (see :func:`layer_problems`)."""
    problems = layer_problems(classifier, layers, names, model)
    if problems:
        raise TameError("; ".join(problems))
    by_name = {info.name: info for info in layers}
    return [by_name[name] for name in names]


def attention_for(classifier: Classifier, chosen: list[LayerInfo], version: str) -> tuple[nn.Module, int]:
    """The AM ``version`` over the ``chosen`` layers (random weights) and the classifier's number of classes."""
    num_classes = getattr(classifier.net, "num_classes", None) or 1000
    return build_attention(version, [i.shape[0] for i in chosen], num_classes, chosen[0].shape[1:]), num_classes
