"""Backbones (registry over timm), feature taps, the TAME family's versions and the TAME wrapper."""

from tame.models.attention import AttentionMechanism
from tame.models.maps import Explanation, explanation_maps, min_max_normalise
from tame.models.registry import Classifier, create_classifier, list_backbones, register_backbone
from tame.models.tame import TameModel
from tame.models.taps import FeatureTaps, tokens_to_map
from tame.models.versions import Version, build_attention, get_version, list_attention_versions, register_version

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
    "register_version",
    "register_backbone",
    "tokens_to_map",
    "Version",
    "get_version",
]
