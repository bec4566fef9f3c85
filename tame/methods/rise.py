"""RISE: Randomized Input Sampling for Explanation (Petsiuk et al., BMVC 2018), batched.

N random binary grids (``grid``×``grid`` cells, each kept with probability ``keep``) are bilinearly upsampled
to (grid+1)·cell pixels and randomly shifted by less than a cell, then cropped to the image (cell =
ceil(H / grid)). The saliency of class k is Σ_n softmax(f(x ⊙ M_n))[k] · M_n / (N · keep), min-max normalised
to [0, 1]. The masks are drawn once per image size from ``seed`` and reused for every image.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tame.errors import TameError
from tame.methods.base import Explainer, register_explainer
from tame.models import Classifier, Explanation, min_max_normalise
from tame.models.maps import check_images


def rise_masks(num_masks: int, size: tuple[int, int], grid: int = 7, keep: float = 0.5, seed: int = 0) -> torch.Tensor:
    """The RISE masks: [N, H, W] in [0, 1] (CPU, float32), reproducible from ``seed``."""
    height, width = size
    generator = torch.Generator().manual_seed(seed)
    cell_h, cell_w = math.ceil(height / grid), math.ceil(width / grid)
    grids = (torch.rand(num_masks, 1, grid, grid, generator=generator) < keep).float()
    upsampled = F.interpolate(
        grids, size=((grid + 1) * cell_h, (grid + 1) * cell_w), mode="bilinear", align_corners=False
    )[:, 0].clamp_(0, 1)
    dy = torch.randint(0, cell_h, (num_masks,), generator=generator).tolist()
    dx = torch.randint(0, cell_w, (num_masks,), generator=generator).tolist()
    return torch.stack([m[y : y + height, x : x + width] for m, y, x in zip(upsampled, dy, dx)])


@register_explainer("rise")
class Rise(Explainer):
    """RISE with ``num_masks`` masks; ``batch_size`` masked images go through the classifier per forward."""

    def __init__(
        self,
        classifier: Classifier,
        num_masks: int = 4000,
        grid: int = 7,
        keep: float = 0.5,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(classifier)
        if num_masks < 1 or grid < 1 or not 0 < keep <= 1 or batch_size < 1:
            raise TameError(
                f"rise: need num_masks >= 1, grid >= 1, 0 < keep <= 1, batch_size >= 1; got "
                f"num_masks={num_masks}, grid={grid}, keep={keep}, batch_size={batch_size}"
            )
        self.num_masks, self.grid, self.keep, self.batch_size, self.seed = num_masks, grid, keep, batch_size, seed
        self._masks: torch.Tensor | None = None

    def masks(self, size: tuple[int, int], device: torch.device) -> torch.Tensor:
        """The masks for images of ``size`` on ``device``: [N, H, W] (drawn once, then cached)."""
        cached = self._masks
        if cached is None or tuple(cached.shape[-2:]) != tuple(size) or cached.device != device:
            cached = rise_masks(self.num_masks, size, self.grid, self.keep, self.seed).to(device)
            self._masks = cached
        return cached

    @torch.no_grad()
    def explain(self, images: torch.Tensor, classes: torch.Tensor | int | None = None) -> Explanation:
        check_images(images)
        logits = self.classifier(images)
        classes = self._classes(classes, logits)
        masks = self.masks(tuple(images.shape[-2:]), images.device)  # [N, H, W]
        batch = images.shape[0]
        rows = torch.arange(batch, device=images.device)
        per_forward = max(1, self.batch_size // batch)  # masks per forward, every image at once
        saliency = torch.zeros(batch, *images.shape[-2:], device=images.device, dtype=torch.float32)
        for start in range(0, self.num_masks, per_forward):
            chunk = masks[start : start + per_forward]  # [m, H, W]
            masked = images.unsqueeze(1) * chunk[None, :, None]  # [B, m, 3, H, W]
            probabilities = torch.softmax(self.classifier(masked.flatten(0, 1)).float(), dim=1)  # [B·m, K]
            scores = probabilities.view(batch, chunk.shape[0], -1)[rows, :, classes]  # [B, m]
            saliency += torch.einsum("bm,mhw->bhw", scores, chunk.float())
        saliency /= self.num_masks * self.keep
        return Explanation(min_max_normalise(saliency), classes, logits)

    def close(self) -> None:
        self._masks = None
