"""The attention mechanism (AM): feature branches -> resize to S -> concat -> 1x1 fuse conv to K class maps.

The four versions of the published TAME code, L-CAM-Img's single 1x1 convolution and P-TAME's head (docs/METHOD.md,
"The attention mechanism"), one small class each over :class:`AttentionMechanism`; :mod:`tame.models.versions` lists
them by name.
Parameter names (``convs.{i}``, ``bns.{i}``, ``fuser``) match the original checkpoints.

The fuse conv is class-selective: ``forward(features, classes)`` computes only the requested class channels
(a gather of fuser weights), which gives the same numbers as computing all K maps and selecting (to float32
rounding). As the fuse conv and the bilinear resize are both linear, each branch is projected onto those weights at
its own resolution and only the projections are resized and summed: sum(C_i) channels are never resized or
concatenated (ResNet-50 at batch 8: 3584 channels at 28x28 -> 8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from tame.errors import TameError

MAX_RESOLUTION = (
    56  # TAME's cap on S (bmezaris/TAME composite_models.py; T-TAME's attention/tame.py): Version.max_resolution
)


class AttentionMechanism(nn.Module):
    """Base: subclasses define the per-layer branch and the fuser's input width."""

    def __init__(
        self, channels: list[int], num_classes: int, size: tuple[int, int], fuse_in: int, fuser_bias: bool = True
    ) -> None:
        super().__init__()
        self.channels = channels
        self.num_classes = num_classes
        self.size = size
        self.fuser = nn.Conv2d(fuse_in, num_classes, kernel_size=1, bias=fuser_bias)

    def branch(self, index: int, feature: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def branches(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """features: L maps [B, C_i, H_i, W_i] -> the branch outputs g_i at their own resolution."""
        if len(features) != len(self.channels):
            raise TameError(f"the attention mechanism expects {len(self.channels)} feature maps, got {len(features)}")
        return [self.branch(i, feature) for i, feature in enumerate(features)]

    def fuser_input(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """features: L maps [B, C_i, H_i, W_i] -> concatenated branch outputs at S: [B, sum, S_h, S_w]."""
        resized = [self.resize(b) for b in self.branches(features)]
        return torch.cat(resized, dim=1)

    def resize(self, maps: torch.Tensor) -> torch.Tensor:
        """[B, n, h, w] -> [B, n, S_h, S_w], bilinear (align_corners=False)."""
        return F.interpolate(maps, size=self.size, mode="bilinear", align_corners=False)

    def forward(
        self, features: Sequence[torch.Tensor], classes: torch.Tensor | None = None, per_image: bool = False
    ) -> torch.Tensor:
        """Pre-sigmoid class maps c.

        - ``classes=None``: all K maps, [B, K, S_h, S_w].
        - ``classes`` long [N]: the maps of those classes for every image, [B, N, S_h, S_w] (= c[:, classes]).
        - ``classes`` long [B] with ``per_image=True``: image b's map of class classes[b], [B, 1, S_h, S_w].
        """
        if classes is None:
            return self.fuser(self.fuser_input(features))  # [B, sum C, S_h, S_w] -> [B, K, S_h, S_w]
        weight = self.fuser.weight[classes, :, 0, 0]  # [N, sum C]
        equation = "bc,bchw->bhw" if per_image else "nc,bchw->bnhw"  # N = B per image
        maps, start = None, 0
        for branch in self.branches(features):  # g_i: [B, C_i, H_i, W_i]
            w = weight[:, start : start + branch.shape[1]].to(branch.dtype)
            start += branch.shape[1]
            projected = torch.einsum(equation, w, branch)  # [B, N, H_i, W_i] ([B, H_i, W_i] per image)
            resized = self.resize(projected.unsqueeze(1) if per_image else projected)
            maps = resized if maps is None else maps + resized
        if self.fuser.bias is None:
            return maps
        bias = self.fuser.bias[classes].to(maps.dtype)  # [N]
        return maps + bias.view((-1, 1, 1, 1) if per_image else (1, -1, 1, 1))


class TameAttention(AttentionMechanism):
    """g_i = ReLU(BN_i(Conv1x1_i(F_i)) + F_i); fuse sum(C_i) -> K."""

    activation = staticmethod(torch.relu)

    def __init__(self, channels: list[int], num_classes: int, size: tuple[int, int]) -> None:
        super().__init__(channels, num_classes, size, fuse_in=sum(channels))
        self.convs = nn.ModuleList(nn.Conv2d(c, c, kernel_size=1, bias=True) for c in channels)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in channels)

    def branch(self, index: int, feature: torch.Tensor) -> torch.Tensor:
        return self.activation(self.bns[index](self.convs[index](feature)) + feature)


class SigmoidBranchAttention(TameAttention):
    """As TAME, with a sigmoid in place of the ReLU: g_i = sigmoid(BN_i(Conv_i(F_i)) + F_i)."""

    activation = staticmethod(torch.sigmoid)


class NoSkipAttention(AttentionMechanism):
    """g_i = ReLU(BN_i(Conv1x1_i(F_i))) with Conv C_i -> K; fuse L*K -> K."""

    def __init__(self, channels: list[int], num_classes: int, size: tuple[int, int]) -> None:
        super().__init__(channels, num_classes, size, fuse_in=len(channels) * num_classes)
        self.convs = nn.ModuleList(nn.Conv2d(c, num_classes, kernel_size=1, bias=True) for c in channels)
        self.bns = nn.ModuleList(nn.BatchNorm2d(num_classes) for _ in channels)

    def branch(self, index: int, feature: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bns[index](self.convs[index](feature)))


class NoSkipNoBatchNormAttention(AttentionMechanism):
    """g_i = ReLU(Conv1x1_i(F_i)) with Conv C_i -> C_i; fuse sum(C_i) -> K."""

    def __init__(self, channels: list[int], num_classes: int, size: tuple[int, int]) -> None:
        super().__init__(channels, num_classes, size, fuse_in=sum(channels))
        self.convs = nn.ModuleList(nn.Conv2d(c, c, kernel_size=1, bias=True) for c in channels)

    def branch(self, index: int, feature: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.convs[index](feature))


class PTameAttention(TameAttention):
    """P-TAME (IDT-ITI/P-TAME, ``PTAMEAttention``): TAME's branches over an auxiliary network's feature maps, each
    branch output upsampled by repeated x2 bilinear steps (``nn.Upsample(scale_factor=2)``) towards the first
    (finest) tapped map's size S, concatenated, fused to K maps by a 1x1 conv *without* bias (their configs'
    ``fuser_bias: false``).

    Their steps are ``int(log2(S_w / w_i))`` doublings; a map that still differs from S after them (sizes that are
    not powers of two apart, where their concatenation fails) is resized to S bilinearly.
    """

    def __init__(self, channels: list[int], num_classes: int, size: tuple[int, int]) -> None:
        AttentionMechanism.__init__(self, channels, num_classes, size, fuse_in=sum(channels), fuser_bias=False)
        self.convs = nn.ModuleList(nn.Conv2d(c, c, kernel_size=1, bias=True) for c in channels)
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for c in channels)

    def resize(self, maps: torch.Tensor) -> torch.Tensor:
        """[B, n, h, w] -> [B, n, S_h, S_w]: x2 bilinear steps while 2 w <= S_w, then a bilinear resize if needed."""
        width = maps.shape[-1]
        while 2 * width <= self.size[1]:
            maps = F.interpolate(maps, scale_factor=2.0, mode="bilinear", align_corners=False)  # [B, n, 2h, 2w]
            width *= 2
        return maps if tuple(maps.shape[-2:]) == tuple(self.size) else super().resize(maps)


class LCamImgAttention(AttentionMechanism):
    """L-CAM-Img (bmezaris/L-CAM, ``AttentionMechanismM``): one feature map, g = F; fuse C -> K (1x1, with bias).

    Its maps keep the layer's own resolution (7x7 for ResNet-50's ``layer4``, 14x14 for VGG-16's ``features.29`` at
    224 px): S = that size, uncapped, so the base's resize to S is the identity.
    """

    def __init__(self, channels: list[int], num_classes: int, size: tuple[int, int]) -> None:
        if len(channels) != 1:
            raise TameError(f"L-CAM-Img takes one feature layer, got {len(channels)} (set model.layers to one name)")
        super().__init__(channels, num_classes, size, fuse_in=channels[0])

    def branch(self, index: int, feature: torch.Tensor) -> torch.Tensor:
        return feature
