"""Quantus (Hedström et al., JMLR 2023) measures explanations through an ``explain_func``; this is TAME's.

>>> import quantus
>>> from tame.methods.quantus_adapter import QuantusModel, explain_func
>>> model = QuantusModel(tame_model.eval())           # what Quantus calls and randomises: classifier + AM
>>> metric = quantus.MPRT(layer_order="top_down", return_average_correlation=True)
>>> scores = metric(model=model, x_batch=images, y_batch=labels, explain_func=explain_func, device="cpu")

``images`` are what TAME takes, [B, 3, H, W] in [0, 1] (the classifier normalises them itself), as numpy arrays.
Quantus's parameter-randomisation metrics deep-copy the model and re-initialise its layers; the copy is what
reaches ``explain_func``, so TAME's map is then read from the randomised classifier's features by the (randomised)
attention mechanism: what TAME explains is what Quantus randomises.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tame.errors import TameError
from tame.models import TameModel


class QuantusModel(nn.Module):
    """A TameModel as the module Quantus takes: ``forward`` gives the classifier's logits [B, K] for images in
    [0, 1]; its submodules are the classifier's and the attention mechanism's (P-TAME: the feature network's too)."""

    def __init__(self, model: TameModel) -> None:
        super().__init__()
        self.tame = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.tame.predict(images)


def explain_func(model: nn.Module, inputs, targets, **kwargs) -> np.ndarray:
    """Quantus's explain_func: ``model`` a :class:`QuantusModel` (or Quantus's randomised copy of one), ``inputs``
    [B, 3, H, W] in [0, 1] and ``targets`` [B] (arrays or tensors) -> TAME's maps, float32 numpy [B, 1, H, W] in
    [0, 1]. Extra keyword arguments (Quantus passes its own, e.g. ``device``) are ignored."""
    if not isinstance(model, QuantusModel):
        raise TameError(
            f"explain_func needs the model Quantus is given to be tame's QuantusModel(tame_model), got "
            f"{type(model).__name__}"
        )
    device = next(model.parameters()).device
    images = torch.as_tensor(np.asarray(inputs), dtype=torch.float32, device=device)
    classes = torch.as_tensor(np.asarray(targets), dtype=torch.long, device=device).reshape(-1)
    model.tame.eval()
    maps = model.tame.explain(images, classes).maps  # [B, H, W]
    return maps.unsqueeze(1).float().cpu().numpy()
