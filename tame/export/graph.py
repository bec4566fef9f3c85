"""The exported graph: images -> (logits [B, K], class [B], map [B, H, W]), as ``TameModel.explain`` computes them.

Inputs (the layout of every exported file):

- ``images``: [B, 3, H, W], RGB, H = W = the model's input size; ``uint8`` 0..255 (the default: decoded pixels as
  they are) or ``float32`` in [0, 1] (``--input float``). The classifier's mean/std normalisation is inside the
  graph, and so is P-TAME's auxiliary network (``model.features``) with its own: one graph holds both networks.
- ``classes``: int64 [B], the class to explain per image; ``-1`` means "the predicted class".

Outputs: ``logits`` float32 [B, K] (of the unmasked images), ``class`` int64 [B] (the explained class: the given one,
or the argmax of the logits where -1 was given), ``map`` float32 [B, H, W] in [0, 1] (min-max normalised per image,
bilinearly resized to the input size).
"""

from __future__ import annotations

import json

import torch
from torch import nn

from tame.models import TameModel
from tame.models.maps import explanation_maps

INPUT_NAMES = ("images", "classes")
OUTPUT_NAMES = ("logits", "class", "map")
INPUT_DTYPES = {"uint8": torch.uint8, "float": torch.float32}
METADATA_FORMAT = "tame-explain/1"


class ExplainGraph(nn.Module):
    """Wraps an eval-mode :class:`TameModel` into the one forward that is exported."""

    def __init__(self, model: TameModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if images.dtype == torch.uint8:  # as tame.data.images.eval_image does: float, then / 255
            images = images.float().div(255)
        logits, features = self.model.features(images)
        chosen = torch.where(classes < 0, logits.argmax(dim=1), classes)
        class_maps = self.model.attention(features, chosen, per_image=True)  # [B, 1, S_h, S_w]
        return logits, chosen, explanation_maps(class_maps, (images.shape[-2], images.shape[-1]))


def metadata(model: TameModel, input_size: int, resize: int, input_dtype: str, interpolation: str) -> dict[str, str]:
    """What a runtime needs to feed the graph and label its outputs; every value a string (ONNX metadata_props)."""
    import tame

    classifier = model.classifier
    values = {
        "format": METADATA_FORMAT,
        "tame_version": tame.__version__,
        "model": classifier.name,
        "layers": model.layers,
        "attention_version": model.version,
        "input_size": input_size,
        "resize": resize,
        "interpolation": interpolation,  # of the resize (antialiased), as tame.data.images.eval_image
        "input_dtype": input_dtype,
        "mean": [round(float(v), 8) for v in classifier.mean.flatten()],
        "std": [round(float(v), 8) for v in classifier.std.flatten()],
        "num_classes": model.num_classes,
        "features": None if model.feature_net is None else model.feature_net.name,  # P-TAME's auxiliary network
        "inputs": list(INPUT_NAMES),
        "outputs": list(OUTPUT_NAMES),
    }
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}


def parse_metadata(props: dict[str, str]) -> dict:
    """The inverse of :func:`metadata`: strings back to numbers and lists."""
    out = {}
    for key, value in props.items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out
