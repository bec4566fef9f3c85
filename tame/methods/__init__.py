"""Explanation methods behind one interface (:class:`Explainer`): the TAME family, the Grad-CAM family
(pytorch-grad-cam), RISE and a random-map control."""

from tame.methods.base import (
    Explainer,
    create_explainer,
    list_methods,
    register_explainer,
    resolve_method,
)
from tame.methods.cam import AblationCam, CamExplainer, GradCam, GradCamPlusPlus, ScoreCam, XGradCam
from tame.methods.family import TameExplainer
from tame.methods.random_map import RandomMap
from tame.methods.rise import Rise, rise_masks

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
