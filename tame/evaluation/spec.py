"""What to evaluate and how, as typed values checked when they are made: :class:`EvalSpec` (one method, one
checkpoint or every epoch of a training folder) and :class:`CompareSpec` (several methods on one list)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tame.config import Config, load_config
from tame.errors import TameError
from tame.io import check_writable_folder, writable_target
from tame.methods import list_methods, resolve_method
from tame.methods.base import METHODS
from tame.metrics import ad_ic
from tame.metrics.class_sensitivity import TILES

PathLike = str | os.PathLike


def default_road_workers() -> int:
    """Threads for ROAD's imputation solves: the machine's cores, at most 8."""
    return min(8, os.cpu_count() or 1)


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """The data, protocol and runtime of an evaluation, shared by :class:`EvalSpec` and :class:`CompareSpec`.

    ``config``: a YAML path or a :class:`Config` (``overrides``, ``key=value``, apply to a path only; None: the
    defaults). ``list_file`` / ``root``: the evaluation list and its image root (default: ``data.eval_list`` and
    ``data.val_root``). ``out``: the output folder (default: beside the checkpoints). ``boxes``: ground-truth boxes
    (adds the pointing games). ``batch_size``: the GLOBAL batch, split evenly over the processes (default:
    ``data.batch_size``, global too); ``chunk``: images per classifier forward on masked copies (None: a whole
    batch's); ``max_samples``: only the list's first N. ``num_masks`` (RISE) and ``layer`` (the CAM methods' target
    layer) go to the methods that take them. ``device``: ``auto``, ``cpu`` or ``cuda[:N]``. ``per_image``: a CSV
    file for one row per image (list path, label, prediction, Y, O at each level, pointing hit); ``per_class``: the
    results per class of the list's labels too (:mod:`tame.evaluation.samples`). ``class_sensitivity``: 2 or 4
    adds the class-sensitivity protocol on composites of that many images (:mod:`tame.evaluation.class_sensitivity`;
    0: off), ``composites`` of them (default: the list's images / tiles). ``sanity_checks``: N > 0 adds the
    cascading-randomisation and random-logit checks on the list's first N images (:mod:`tame.evaluation.sanity`;
    ``tame compare`` only).
    """

    config: PathLike | Config | None = None
    overrides: Sequence[str] = ()
    list_file: PathLike | None = None
    root: PathLike | None = None
    out: PathLike | None = None
    levels: Sequence[float] = ad_ic.LEVELS
    road: bool = False
    road_workers: int = field(default_factory=default_road_workers)
    boxes: PathLike | None = None
    pointing_tolerance: float = 0.0
    batch_size: int | None = None
    chunk: int | None = None
    max_samples: int | None = None
    num_masks: int = 4000
    layer: str | None = None
    device: str = "auto"
    progress: bool = True
    per_image: PathLike | None = None
    per_class: bool = False
    class_sensitivity: int = 0
    composites: int | None = None
    sanity_checks: int = 0

    def __post_init__(self) -> None:
        if self.class_sensitivity not in (0, *TILES):
            raise TameError(f"--class-sensitivity takes 2 or 4 images per composite, got {self.class_sensitivity}")
        if self.sanity_checks < 0:
            raise TameError(f"--sanity-checks takes a number of images, got {self.sanity_checks}")
        for name in ("batch_size", "chunk", "max_samples", "num_masks", "road_workers", "composites"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise TameError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
        if not self.levels or not all(0 < p <= 1 for p in self.levels):
            raise TameError(f"levels must be fractions in (0, 1], got {list(self.levels)}")
        if isinstance(self.overrides, str):
            raise TameError(f"overrides must be a list of key=value strings, got the string {self.overrides!r}")
        if isinstance(self.config, Config) and self.overrides:
            raise TameError("overrides apply to a config file; change the Config object instead")
        if not 0 <= self.pointing_tolerance < math.inf:
            tolerance = self.pointing_tolerance
            raise TameError(f"--pointing-tolerance must be a distance in pixels (0 or more), got {tolerance}")
        self._check_outputs()

    def _check_outputs(self) -> None:
        """``per_image`` and ``out`` must be writable: found now, not after the whole evaluation."""
        if self.per_image is not None:
            if str(self.per_image) == "":
                raise TameError("--per-image '' names no file; give the name of the CSV file to write")
            if os.path.isdir(self.per_image):
                raise TameError(f"--per-image {self.per_image} is a folder; give the name of the CSV file to write")
            check_writable_folder(Path(self.per_image).parent, f"--per-image {self.per_image}")
            writable_target(self.per_image)
        if self.out is not None:
            if str(self.out) == "":
                raise TameError("--out '' names no folder; give the folder to write the results into")
            check_writable_folder(self.out, f"--out {self.out}")

    def load_config(self) -> Config:
        """The config, its overrides applied and validated."""
        return self.config if isinstance(self.config, Config) else load_config(self.config, list(self.overrides))

    def config_name(self) -> str | None:
        """The config file as the reports record it (None for a Config object or the defaults)."""
        return None if self.config is None or isinstance(self.config, Config) else str(self.config)

    def method_options(self, method: str) -> dict:
        """The keyword arguments ``method`` takes from these options (RISE's mask count, the CAM target layer; a
        ``name@layer`` entry of :class:`CompareSpec` brings its own layer)."""
        if trained_entry(method) is not None:
            return {}
        method, layer = split_method(method)
        options = {"num_masks": self.num_masks} if method == "rise" else {}
        if (layer or self.layer) and method not in ("tame", "rise"):
            options["layer"] = layer or self.layer
        return options


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


@dataclass(frozen=True, kw_only=True)
class EvalSpec(EvalOptions):
    """One method: TAME at a checkpoint file, or at every ``epoch_N.pt`` of a training folder, or a baseline."""

    method: str = "tame"
    checkpoint: PathLike | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", resolve_method(self.method))
        if self.method == "tame" and not self.checkpoint:
            raise TameError("--checkpoint is required for --method tame (a file, or a training folder)")
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class CompareSpec(EvalOptions):
    """Several methods on one list under one protocol; ``checkpoint``: TAME's weights (a folder: its newest epoch).

    A CAM method may be given as ``name@layer`` (e.g. ``gradcam@layer3``) and more than once with different layers;
    its rows are then labelled ``name (layer)``. Any other trained AM of the family joins as ``label=checkpoint``
    (e.g. ``lcam-img=snapshots/lcam/``): its version and layers come from the checkpoint, the classifier is the
    config's."""

    methods: Sequence[str] = field(default_factory=list_methods)
    checkpoint: PathLike | None = None
    road: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.methods, str) or not self.methods:
            raise TameError(f"methods must be a non-empty list of method names, got {self.methods!r}")
        methods = tuple(dict.fromkeys(_resolve_entry(name) for name in self.methods))  # in order, once each
        object.__setattr__(self, "methods", methods)
        if "tame" in methods and not self.checkpoint:
            raise TameError("--checkpoint is required to compare tame (a file, or a training folder)")
        super().__post_init__()
