"""What to evaluate, read from the config's ``eval`` and ``compare`` sections (:class:`tame.config.EvalConfig`,
checked by :func:`tame.config.validate`): the method names resolved, each method's options, a comparison's entries
(``name@layer``, ``label=checkpoint``)."""

from __future__ import annotations

import dataclasses
import os

from tame.config import Config, EvalConfig
from tame.errors import TameError
from tame.methods import list_methods, resolve_method
from tame.methods.base import METHODS


def default_road_workers() -> int:
    """Threads for ROAD's imputation solves: the machine's cores, at most 8."""
    return min(8, os.cpu_count() or 1)


def method_options(evaluation: EvalConfig, method: str) -> dict:
    """The keyword arguments ``method`` takes from the ``eval`` section (RISE's mask count, the CAM target layer; a
    ``name@layer`` entry of ``compare.methods`` brings its own layer)."""
    if trained_entry(method) is not None:
        return {}
    method, layer = split_method(method)
    options = {"num_masks": evaluation.num_masks} if method == "rise" else {}
    if (layer or evaluation.layer) and method not in ("tame", "rise"):
        options["layer"] = layer or evaluation.layer
    return options


def eval_method(config: Config) -> str:
    """``eval.method`` resolved; TAME needs ``eval.checkpoint``."""
    method = resolve_method(config.eval.method)
    if method == "tame" and not config.eval.checkpoint:
        raise TameError("--checkpoint is required for --method tame (a file, or a training folder)")
    return method


def compare_methods(config: Config) -> tuple[str, ...]:
    """``compare.methods`` resolved, in order, once each (None: every registered method); TAME needs
    ``eval.checkpoint``."""
    names = config.compare.methods if config.compare.methods is not None else list_methods()
    methods = tuple(dict.fromkeys(_resolve_entry(name) for name in names))
    if "tame" in methods and not config.eval.checkpoint:
        raise TameError("--checkpoint is required to compare tame (a file, or a training folder)")
    return methods


def with_road(config: Config, default: bool) -> Config:
    """``config`` with ``eval.road`` decided (None: ``default``, off for ``tame eval``, on for ``tame compare``) and
    ``eval.road_workers`` counted (None: :func:`default_road_workers`)."""
    evaluation = config.eval
    road = default if evaluation.road is None else evaluation.road
    workers = evaluation.road_workers or default_road_workers()
    return dataclasses.replace(config, eval=dataclasses.replace(evaluation, road=road, road_workers=workers))


def split_method(entry: str) -> tuple[str, str | None]:
    """``"gradcam@layer3"`` -> ``("gradcam", "layer3")``; ``"gradcam"`` -> ``("gradcam", None)``."""
    name, _, layer = entry.partition("@")
    return name, layer or None


def trained_entry(entry: str) -> tuple[str, str] | None:
    """``"lcam-img=snapshots/lcam/"`` -> ``("lcam-img", "snapshots/lcam/")``: a trained AM of any version, its
    layers and version read from the checkpoint; None for a method name."""
    label, sep, checkpoint = entry.partition("=")
    return (label, checkpoint) if sep else None


def row_label(entry: str) -> str:
    """The name a comparison's row carries: ``"gradcam@layer3"`` -> ``"gradcam (layer3)"``, ``"lcam-img=PATH"``
    -> ``"lcam-img"``."""
    trained = trained_entry(entry)
    if trained is not None:
        return trained[0]
    name, layer = split_method(entry)
    return f"{name} ({layer})" if layer else name


def _resolve_entry(entry: str) -> str:
    """A method name, ``name@layer`` for a CAM method on a given target layer (the name resolved), or
    ``label=checkpoint`` for a trained AM."""
    trained = trained_entry(entry)
    if trained is not None:
        label, checkpoint = trained
        if not label or not checkpoint or "@" in label:
            raise TameError(f"a trained method is LABEL=CHECKPOINT (e.g. lcam-img=snapshots/lcam/), got {entry!r}")
        if label in METHODS:
            raise TameError(f"{entry!r}: {label!r} names a built-in method; give the trained one another label")
        return entry
    name, layer = split_method(entry)
    key = resolve_method(name)
    if layer is None:
        return key
    if not METHODS.get(key).needs_layer:
        raise TameError(f"method {key!r} takes no target layer (got {entry!r})")
    return f"{key}@{layer}"
