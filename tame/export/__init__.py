"""Explanations in production: one exported graph from images to (logits, class, map) (``tame export``).

>>> from tame.export import export_model
>>> result = export_model(model, "model.onnx", input_size=224, dynamic_batch=True)   # verified, then written
>>> runner = open_exported("model.onnx"); logits, classes, maps = runner(uint8_images, np.full(B, -1))

The graph's inputs and outputs are described in :mod:`tame.export.graph`.
"""

from tame.export.api import ExportResult, export_model, read_images
from tame.export.exporters import FORMATS
from tame.export.graph import INPUT_NAMES, OUTPUT_NAMES, ExplainGraph
from tame.export.runners import Runner, open_exported
from tame.export.verify import Verification

__all__ = [
    "FORMATS",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "ExplainGraph",
    "ExportResult",
    "Runner",
    "Verification",
    "export_model",
    "open_exported",
    "read_images",
]
