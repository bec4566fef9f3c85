"""Check an exported model against the PyTorch path (``TameModel.explain``) on the same images."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tame.export.runners import Runner
from tame.models import TameModel

TOLERANCE = 1e-4  # max |map difference| allowed


@dataclass
class Verification:
    images: int
    max_map_diff: float
    max_logit_diff: float
    classes_agree: bool
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return self.classes_agree and self.max_map_diff <= self.tolerance

    def summary(self) -> str:
        return (
            f"verified on {self.images} images x 2 (predicted and given classes): max |map diff| "
            f"{self.max_map_diff:.3g} (tolerance {self.tolerance:g}), max |logit diff| {self.max_logit_diff:.3g}, "
            f"classes agree: {'yes' if self.classes_agree else 'NO'}"
        )


def as_input(images: torch.Tensor, input_dtype: str) -> np.ndarray:
    """images float [B, 3, H, W] in [0, 1] (k / 255 values, as decoded images are) -> the exported input layout."""
    if input_dtype == "uint8":
        return images.mul(255).round().to(torch.uint8).cpu().numpy()
    return images.float().cpu().numpy()


def verify_export(
    model: TameModel,
    runner: Runner,
    images: torch.Tensor,
    input_dtype: str,
    tolerance: float = TOLERANCE,
) -> Verification:
    """Run ``runner`` and ``model.explain`` on ``images`` (float [B, 3, H, W], values k / 255) twice: for the
    predicted classes (-1) and for given classes (the second most likely), and compare maps, logits and classes."""
    model.eval()
    feed = as_input(images, input_dtype)
    reference_input = torch.from_numpy(feed).to(images.device)
    if input_dtype == "uint8":
        reference_input = reference_input.float().div(255)
    predicted = model.explain(reference_input)
    second = predicted.logits.topk(min(2, model.num_classes), dim=1).indices[:, -1]
    given = model.explain(reference_input, second)
    map_diff, logit_diff, agree = 0.0, 0.0, True
    for classes, reference in ((torch.full_like(second, -1), predicted), (second, given)):
        logits, chosen, maps = runner.run_any_batch(feed, classes.cpu().numpy())
        map_diff = max(map_diff, float(np.abs(maps - reference.maps.cpu().numpy()).max()))
        logit_diff = max(logit_diff, float(np.abs(logits - reference.logits.float().cpu().numpy()).max()))
        agree = agree and bool((chosen == reference.classes.cpu().numpy()).all())
    return Verification(len(images), map_diff, logit_diff, agree, tolerance)
