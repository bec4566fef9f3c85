"""A control: smooth random maps that know nothing about the image or the class.

Any explanation method worth its name must beat it on AD/IC and the pointing game. Maps are uniform noise on a
``grid`` x ``grid`` lattice, bilinearly upsampled and min-max normalised. Each image's noise is drawn from
``(seed, its position)``: its list position when the evaluation says (:meth:`Explainer.read_positions`), else its
place in the order images were explained (0, 1, ...). So a list's maps are the same in every run and with any number
of processes.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain, count, islice

import numpy as np
import torch
import torch.nn.functional as F

from tame.methods.base import Explainer, register_explainer
from tame.models import Classifier, Explanation, min_max_normalise
from tame.models.maps import check_images


@register_explainer("random")
class RandomMap(Explainer):
    def __init__(self, classifier: Classifier, grid: int = 7, seed: int = 0) -> None:
        super().__init__(classifier)
        self.grid, self.seed = grid, seed
        self._positions = count()

    def read_positions(self, positions: Iterable[int]) -> None:
        """The next images are at ``positions`` (then 0, 1, ... again)."""
        self._positions = chain(positions, count())

    def noise(self, position: int) -> torch.Tensor:
        """The lattice of the image at ``position``: [grid, grid] in [0, 1)."""
        drawn = np.random.default_rng([self.seed, position]).random((self.grid, self.grid), dtype=np.float32)
        return torch.from_numpy(drawn)

    @torch.no_grad()
    def explain(self, images: torch.Tensor, classes: torch.Tensor | int | None = None) -> Explanation:
        check_images(images)
        logits = self.classifier(images)
        classes = self._classes(classes, logits)
        noise = torch.stack([self.noise(p) for p in islice(self._positions, images.shape[0])]).unsqueeze(1)
        maps = F.interpolate(noise.to(images.device), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return Explanation(min_max_normalise(maps)[:, 0], classes, logits)
