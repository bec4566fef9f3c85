"""The TAME family as an explanation method: TAME, T-TAME, P-TAME and L-CAM-Img explain with a trained
attention mechanism (:class:`tame.models.TameModel`), one forward pass per batch."""

from __future__ import annotations

import torch

from tame.methods.base import Explainer, register_explainer
from tame.models import Explanation, TameModel


@register_explainer("tame")
class TameExplainer(Explainer):
    """TAME and its family (T-TAME, P-TAME, L-CAM-Img): one forward pass of the classifier with its trained
    attention mechanism."""

    needs_tame_model = True

    def __init__(self, model: TameModel) -> None:
        super().__init__(model.classifier)
        self.model = model.eval()

    def explain(self, images: torch.Tensor, classes: torch.Tensor | int | None = None) -> Explanation:
        return self.model.explain(images, classes)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.predict(images)
