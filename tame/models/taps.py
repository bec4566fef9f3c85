"""Feature taps: forward hooks on named modules that collect their outputs as feature maps.

The object that adds the hooks removes them (``close()`` or use as a context manager). The hooks record only
inside a capture (``with taps.capture(image_hw) as maps: net(images)``), so the other forwards of the same
network (the masked images of a training step, a bare prediction) keep nothing.
CNN outputs [B, C, H, W] are used as they are; token outputs [B, N, D] (ViT) lose their prefix
(class/register) tokens and are reshaped to [B, D, h, w]. ``token_transform="class_weighted"`` (T-TAME's option)
first multiplies every patch token channel-wise by the class token (the first token).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from tame.config.choices import TokenTransform, check_choice
from tame.errors import TameError
from tame.registry import close_matches


def tokens_to_map(
    tokens: torch.Tensor, num_prefix_tokens: int, image_hw: tuple[int, int], transform: str = "drop"
) -> torch.Tensor:
    """tokens: [B, N, D] -> [B, D, h, w], dropping the first ``num_prefix_tokens``; h/w follow the image's aspect.

    ``transform="class_weighted"``: patch tokens [B, P, D] * class token [B, 1, D] before the reshape.
    """
    batch, count, dim = tokens.shape
    patches = count - num_prefix_tokens
    height = max(1, round(math.sqrt(patches * image_hw[0] / image_hw[1])))
    width = patches // height
    if height * width != patches:
        raise TameError(
            f"cannot arrange {patches} patch tokens into a grid for an image of {image_hw[0]}x{image_hw[1]}"
        )
    patch_tokens = tokens[:, num_prefix_tokens:]  # [B, P, D]
    if transform == "class_weighted":
        if num_prefix_tokens < 1:
            raise TameError("token_transform 'class_weighted' needs a class token (the model has no prefix tokens)")
        patch_tokens = patch_tokens * tokens[:, :1]
    else:
        check_choice(transform, TokenTransform, "token_transform")
    return patch_tokens.transpose(1, 2).reshape(batch, dim, height, width)


class FeatureTaps:
    """Collects the outputs of ``layers`` (names as ``net.named_modules()`` gives them) during a forward."""

    def __init__(
        self, net: nn.Module, layers: Sequence[str], num_prefix_tokens: int = 0, token_transform: str = "drop"
    ) -> None:
        modules = dict(net.named_modules())
        for name in layers:
            if name not in modules or name == "":
                close = close_matches(name, [n for n in modules if n], cutoff=0.5)
                hint = f"; closest: {', '.join(close)}" if close else ""
                raise TameError(f"unknown layer {name!r}{hint} (`tame-inspect MODEL` lists the layers)")
        if len(set(layers)) != len(layers):
            raise TameError(f"layers repeat a name: {' '.join(layers)}")
        self.layers = list(layers)
        self.num_prefix_tokens = num_prefix_tokens
        check_choice(token_transform, TokenTransform, "token_transform")
        self.token_transform = token_transform
        self.image_hw: tuple[int, int] = (1, 1)
        self._outputs: dict[str, torch.Tensor] | None = None  # None: no capture open, the hooks keep nothing
        self._handles = [modules[name].register_forward_hook(_Store(self, name)) for name in self.layers]

    @contextmanager
    def capture(self, image_hw: tuple[int, int]) -> Iterator[list[torch.Tensor]]:
        """``with taps.capture((H, W)) as maps: net(images)``: the forwards inside the block are recorded; when it
        ends, ``maps`` holds the feature maps [B, C_i, H_i, W_i] in ``layers`` order. Nothing is kept on error."""
        maps: list[torch.Tensor] = []
        self.begin(image_hw)
        try:
            yield maps
            maps.extend(self.collect())
        finally:
            self._outputs = None

    def begin(self, image_hw: tuple[int, int]) -> None:
        """Open a capture (prefer :meth:`capture`): the outputs of the forwards from here on are kept until
        :meth:`collect`; ``image_hw`` is the image size (for token grids)."""
        self._outputs = {}
        self.image_hw = image_hw

    def collect(self) -> list[torch.Tensor]:
        """Close the capture: the tapped feature maps, in ``layers`` order: [B, C_i, H_i, W_i] each."""
        outputs, self._outputs = self._outputs or {}, None
        maps = []
        for name in self.layers:
            if name not in outputs:
                raise TameError(f"layer {name!r} did not run during the forward pass")
            maps.append(self._as_map(name, outputs[name]))
        return maps

    def _as_map(self, name: str, output) -> torch.Tensor:
        if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
            output = output[0]
        if not isinstance(output, torch.Tensor):
            raise TameError(f"layer {name!r} outputs {type(output).__name__}, not a feature map")
        if output.dim() == 4:
            return output
        if output.dim() == 3 and self.num_prefix_tokens >= 0 and output.shape[1] > self.num_prefix_tokens:
            return tokens_to_map(output, self.num_prefix_tokens, self.image_hw, self.token_transform)
        raise TameError(
            f"layer {name!r} outputs shape {tuple(output.shape)}, not a feature map "
            "[B, C, H, W] or tokens [B, N, D]; pick another layer"
        )

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> FeatureTaps:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Store:
    """The forward hook of one tapped layer: keeps its output while a capture is open. An object, not a closure, so
    that a deep copy of the network (Quantus's parameter randomisation copies it) hooks the copied taps."""

    def __init__(self, taps: FeatureTaps, name: str) -> None:
        self.taps, self.name = taps, name

    def __call__(self, _module: nn.Module, _inputs, output) -> None:
        if self.taps._outputs is not None:
            self.taps._outputs[self.name] = output
