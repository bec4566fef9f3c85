"""A control: smooth random maps that know nothing about the image or the class.

Any explanation method worth its name must beat it on AD/IC and the pointing game. Maps are uniform noise on a
``grid`` x ``grid`` lattice, bilinearly upsampled and min-max normalised; reproducible from ``seed``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tame.methods.base import Explainer, register_explainer
from tame.models import Classifier, Explanation, min_max_normalise
from tame.models.maps import check_images


@register_explainer("random")
class RandomMap(Explainer):
    def __init__(self, classifier: Classifier, grid: int = 7, seed: int = 0) -> None:
        super().__init__(classifier)
        self.grid = grid
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def explain(self, images: torch.Tensor, classes: torch.Tensor | int | None = None) -> Explanation:
        check_images(images)
        logits = self.classifier(images)
        classes = self._classes(classes, logits)
        noise = torch.rand(images.shape[0], 1, self.grid, self.grid, generator=self.generator)  # [B, 1, g, g]
        maps = F.interpolate(noise.to(images.device), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return Explanation(min_max_normalise(maps)[:, 0], classes, logits)
