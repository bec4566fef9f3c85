"""BatchNorm synchronised across ranks, on any device and backend (gloo included).

``torch.nn.SyncBatchNorm`` refuses CPU tensors, and the DDP equivalence (docs/METHOD.md, "Distributed training":
N ranks x B/N gives the same AM as one process with B) needs the AM's BatchNorm to see the global batch.
This one uses the differentiable all-reduce below: statistics over N*B*H*W values, gradients through
them summed across ranks, running statistics updated with the unbiased variance as ``BatchNorm2d`` does.
State-dict keys are those of ``BatchNorm2d`` (weight, bias, running_mean, running_var, num_batches_tracked).
"""

from __future__ import annotations

import torch
import torch.distributed as torch_dist
from torch import nn


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of every rank's input is the sum over ranks of the output gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone(memory_format=torch.contiguous_format)
        torch_dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone(memory_format=torch.contiguous_format)
        torch_dist.all_reduce(grad)
        return grad


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Differentiable sum over ranks (a new tensor)."""
    return _AllReduceSum.apply(tensor)


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` whose training-mode statistics cover the batches of all ranks."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> [B, C, H, W]; eval mode (or one process) is plain BatchNorm2d."""
        if not (self.training and torch_dist.is_available() and torch_dist.is_initialized()):
            return super().forward(x)
        xf = x.float()
        channels = xf.shape[1]
        local_sum = xf.sum(dim=(0, 2, 3))  # [C]
        local_count = torch.full((1,), xf.numel() / channels, dtype=torch.float32, device=x.device)
        totals = all_reduce_sum(torch.cat([local_sum, local_count]))  # two passes: sum, then squared deviations
        count = totals[-1].detach()
        mean = totals[:channels] / count  # [C]
        centred = xf - mean.view(1, -1, 1, 1)
        var = all_reduce_sum(centred.square().sum(dim=(0, 2, 3))) / count  # biased, [C]
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1.0).clamp(min=1.0)
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return out.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Make every ``BatchNorm2d`` in ``module`` a :class:`SyncBatchNorm2d`, in place.

    Only ``forward`` differs, so each layer keeps its own parameters and buffers (device, values, state-dict keys).
    """
    for layer in module.modules():
        if type(layer) is nn.BatchNorm2d:
            layer.__class__ = SyncBatchNorm2d
    return module
