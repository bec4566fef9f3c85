"""Explanation methods behind one interface: TAME, the Grad-CAM family (pytorch-grad-cam), RISE
and a random-map control."""

from tame.baselines.base import (
    Explainer,
    TameExplainer,
    create_explainer,
    list_methods,
    register_explainer,
    resolve_method,
)
from tame.baselines.cam import AblationCam, CamExplainer, GradCam, GradCamPlusPlus, ScoreCam, XGradCam
from tame.baselines.random_map import RandomMap
from tame.baselines.rise import Rise, rise_masks

__all__ = [
    "AblationCam",
    "CamExplainer",
    "Explainer",
    "GradCam",
    "GradCamPlusPlus",
    "RandomMap",
    "Rise",
    "ScoreCam",
    "TameExplainer",
    "XGradCam",
    "create_explainer",
    "list_methods",
    "register_explainer",
    "resolve_method",
    "rise_masks",
]
