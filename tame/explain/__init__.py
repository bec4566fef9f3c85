"""Explaining a user's own image files: the gallery loop (:mod:`tame.explain.gallery`: the config's ``explain``
section -> ``explain_images``) and the files it writes (:mod:`tame.explain.files`: maps, overlays, index.html)."""

from tame.explain.gallery import ExplainResult, explain_images

__all__ = ["ExplainResult", "explain_images"]
