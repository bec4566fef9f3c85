"""tame: TAME (Trainable Attention Mechanism for Explanations) for any image classifier."""

from tame.errors import TameError
from tame.models import (
    Classifier,
    Explanation,
    TameModel,
    create_classifier,
    list_attention_versions,
    list_backbones,
    register_backbone,
)

__version__ = "0.1.0"

__all__ = [
    "Classifier",
    "Explanation",
    "TameError",
    "TameModel",
    "create_classifier",
    "list_attention_versions",
    "list_backbones",
    "register_backbone",
]
