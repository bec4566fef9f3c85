"""One interface for every explanation method: TAME and the baselines it is compared with.

>>> explainer = create_explainer("gradcam", tame_model)        # target layer: the model's last tapped layer
>>> out = explainer.explain(images)                           # Explanation(maps [B, H, W] in [0, 1], classes, logits)
>>> explainer.close()                                         # or use it as a context manager

An explainer never changes its input images and leaves no hooks behind once ``explain`` returns.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable

import torch

from tame.errors import TameError
from tame.models import Classifier, Explanation, TameModel
from tame.models.maps import resolve_classes
from tame.registry import Registry

METHODS: Registry[type[Explainer]] = Registry("method", case_sensitive=False)


def register_explainer(name: str) -> Callable[[type[Explainer]], type[Explainer]]:
    """Class decorator: ``@register_explainer("gradcam")``."""

    def decorate(cls: type[Explainer]) -> type[Explainer]:
        cls.name = name
        return METHODS.add(name, cls)

    return decorate


def list_methods() -> list[str]:
    """Names accepted by :func:`create_explainer` (and ``tame eval --method``)."""
    return METHODS.names()


def resolve_method(name: str) -> str:
    """The registered name for ``name`` (case-insensitive); an unknown name is a TameError with suggestions."""
    return METHODS.resolve(name)


class Explainer:
    """Explains a frozen classifier's decisions with maps [B, H, W] in [0, 1]."""

    name = ""
    needs_layer = False  # takes a target layer (``layer=``)
    needs_tame_model = False  # explains with a TameModel's trained attention mechanism (the TAME family)

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier

    def explain(self, images: torch.Tensor, classes: torch.Tensor | int | None = None) -> Explanation:
        """images [B, 3, H, W] in [0, 1] -> maps [B, H, W] in [0, 1] for ``classes`` (default: the prediction)."""
        raise NotImplementedError

    def read_positions(self, positions: Iterable[int]) -> None:
        """The list positions of the images the next ``explain`` calls get, in order (a sharded evaluation's: rank r
        of W reads r, r + W, ...). A method that draws its maps at random (the ``random`` control) draws each image's
        from its position, so any number of ranks draws what one process draws; the others ignore it."""

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [B, K] of the classifier alone (used on masked images by the metrics)."""
        return self.classifier(images)

    def close(self) -> None:
        """Release what the explainer holds (hooks, caches)."""

    def __enter__(self) -> Explainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _classes(self, classes: torch.Tensor | int | None, logits: torch.Tensor) -> torch.Tensor:
        return resolve_classes(classes, logits)


def create_explainer(name: str, model: TameModel | Classifier, *, layer: str | None = None, **options) -> Explainer:
    """Build the explainer ``name`` for ``model``.

    ``model``: a :class:`TameModel` (required for ``tame``; for the baselines its classifier is used, and its last
    tapped layer is the default CAM target layer) or a bare :class:`Classifier`.
    ``layer``: target layer of the CAM methods (a ``net.named_modules()`` name). ``options``: the method's own
    keyword arguments (e.g. ``num_masks`` for RISE, ``batch_size`` for Score-CAM and Ablation-CAM).
    """
    key = resolve_method(name)
    cls = METHODS.get(key)
    if cls.needs_tame_model:
        if not isinstance(model, TameModel):
            raise TameError("method 'tame' needs a TameModel with trained attention weights")
        return cls(model)
    classifier = model.classifier if isinstance(model, TameModel) else model
    if cls.needs_layer:
        if layer is None:
            if not isinstance(model, TameModel):
                raise TameError(f"method {key!r} needs a target layer (layer=...)")
            layer = model.layers[-1]
        options["layer"] = layer
    accepted = inspect.signature(cls.__init__).parameters
    unknown = [option for option in options if option not in accepted]
    if unknown:
        raise TameError(f"method {key!r} has no option {unknown[0]!r}")
    return cls(classifier, **options)
