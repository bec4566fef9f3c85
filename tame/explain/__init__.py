"""Explaining a user's own image files: the gallery loop (:mod:`tame.explain.gallery`: ``ExplainSpec`` ->
``explain_images``) and the files it writes (:mod:`tame.explain.files`: maps, overlays, index.html)."""

from tame.explain.gallery import ExplainResult, ExplainSpec, explain_images

__all__ = ["ExplainResult", "ExplainSpec", "explain_images"]
