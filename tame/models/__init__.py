"""Backbones (registry over timm), feature taps, the attention-mechanism versions and the TAME wrapper."""

from tame.models.attention import AttentionMechanism, build_attention, list_attention_versions, register_attention
from tame.models.registry import Classifier, create_classifier, list_backbones, register_backbone
from tame.models.tame import Explanation, TameModel, explanation_maps, min_max_normalise
from tame.models.taps import FeatureTaps, tokens_to_map

__all__ = [
    "AttentionMechanism",
    "Classifier",
    "Explanation",
    "FeatureTaps",
    "TameModel",
    "build_attention",
    "create_classifier",
    "explanation_maps",
    "list_attention_versions",
    "list_backbones",
    "min_max_normalise",
    "register_attention",
    "register_backbone",
    "tokens_to_map",
]
