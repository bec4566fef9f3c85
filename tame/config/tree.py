"""Run configuration: YAML (``yaml.safe_load``) -> typed dataclasses, with ``key=value`` overrides.

One typed tree (as torchtitan's JobConfig): the run's sections (``model``, ``data``, ``train``, ``log``) and the
commands' (``explain``, ``eval``, ``compare``, ``export``), whose fields are declared with :func:`option` (the help
beside the default; ``tame.commands.options.add_section_flags`` generates each command's flags from them).
Layers: dataclass defaults -> the YAML file -> CLI overrides (``train.max_lr=1e-3 data.batch_size=64``) -> the
flags a command was given (``values``); :func:`validate` checks the whole tree, once, in :func:`load_config`.
Unknown keys and values of the wrong type are errors that name the key. Paths may use ``${TAME_DATA}``-style
environment variables (expanded when the config is resolved); the resolved config is saved with every run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from tame.config import choices
from tame.config.safe_yaml import load_yaml, load_yaml_file
from tame.config.shipped import resolve_config, resolve_lists
from tame.errors import TameError
from tame.io import check_writable_folder, writable_target


@dataclass
class FeaturesConfig:
    """``model.features``: an auxiliary network whose feature maps the AM reads (P-TAME); no name: the classifier's
    own, at ``model.layers``. The explained classifier is then only called on images and masked images."""

    name: str | None = None  # as model.name (timm, registered, module:function), e.g. torchvision.models:resnet18
    pretrained: bool = True
    weights: str | None = None  # local state dict of the auxiliary network
    num_classes: int | None = None  # its head's classes (for a weights file with another head); None: its default
    layers: list[str] = field(default_factory=list)  # its tapped layers, finest first (P-TAME: layer1..layer4)
    mean: list[float] | None = None  # its own normalisation; null/auto: the network's (ImageNet's with a warning)
    std: list[float] | None = None


@dataclass
class LossConfig:
    """``train.loss``: coefficients of the loss (tame.models.loss.LossWeights); null/auto: the version's."""

    ce: float | None = None
    area: float | None = None
    variation: float | None = None
    area_power: float | None = None
    border_penalty: float | None = None


def check_momentum(train) -> None:
    """0 <= momentum < 1 for every momentum key; Nesterov needs momentum > 0 (every one the run uses)."""
    keys = ["momentum"] + (["base_momentum", "max_momentum"] if train.cycle_momentum else [])
    for key in keys:
        value = getattr(train, key)
        if not 0 <= value < 1:
            raise TameError(f"config key train.{key}: must be in [0, 1), got {value!r}")
        if train.nesterov and value == 0:
            raise TameError(
                f"config key train.{key}: Nesterov momentum needs a momentum > 0, got {value!r} "
                "(or set train.nesterov=false for plain SGD)"
            )
    if train.cycle_momentum and train.base_momentum > train.max_momentum:
        raise TameError(
            f"config key train.base_momentum: {train.base_momentum!r} is larger than "
            f"train.max_momentum={train.max_momentum!r}"
        )


@dataclass
class ModelConfig:
    name: str = "resnet50.tv_in1k"  # timm name (+ pretrained tag), a registered name, or ``module:function``
    pretrained: bool = True  # download timm weights (ignored when ``weights`` is given)
    weights: str | None = None  # local .pth/.pt/.safetensors with the classifier's state dict
    num_classes: int | None = None  # classifier's number of classes (None: what the model reports)
    drop_rate: float | None = None  # the classifier's dropout (timm's drop_rate; VGG: both Dropout layers of its
    # classifier, torchvision's 0.5); null/auto: the builder's default (timm: 0). Acts only with backbone_mode: train
    layers: list[str] = field(default_factory=lambda: ["layer2", "layer3", "layer4"])
    version: str = "TAME"  # attention-mechanism version, see ``tame.models.list_attention_versions()``
    mean: list[float] | None = None  # normalisation; null/auto: the model's own (tame.models.preprocessing)
    std: list[float] | None = None
    token_transform: choices.TokenTransform = "drop"  # ViT tokens -> map: drop prefix tokens | x class token
    prefix_tokens: int | None = None  # tokens before the patch tokens; null/auto: what the model tells, else 0
    class_names: str | None = None  # file: one name per line, or `label name` per line; null: ImageNet's (1000)
    allow_other_backbone: bool = False  # load an AM checkpoint trained on another model name (a deliberate transfer)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)


@dataclass
class DataConfig:
    root: str = "${TAME_DATA}/ILSVRC2012_img_train"  # image root of the training list
    train_list: str = "datalist/ILSVRC/ResNet50_train.txt"
    val_root: str = "${TAME_DATA}/ILSVRC2012_img_val"  # image root of the validation/evaluation lists
    val_list: str | None = None  # validated during training (tame.engine.validation); null/"": no validation
    eval_list: str = "datalist/ILSVRC/Evaluation_2000.txt"
    backend: choices.Backend = "auto"  # dali | torch | auto (DALI where available)
    batch_size: int = 32  # global batch; each of N ranks gets batch_size / N (a multiple of N: tame.session)
    workers: int = 4  # decoding threads (DALI) or loader processes (torch) per rank
    resize: int | None = None  # shorter side before cropping; null/auto: the model's own (crop / crop_pct)
    crop: int | None = None  # null/auto: the model's input size
    interpolation: choices.Interpolation | None = None  # bilinear | bicubic; null/auto: the model's own
    validate: choices.ListValidation = "cheap"  # list validation before a run: none | cheap | decode


@dataclass
class TrainConfig:
    epochs: int = 4
    max_lr: float = 1e-4  # peak LR of the weights; biases get bias_lr_factor x
    bias_lr_factor: float = 2.0  # the biases' LR over the weights' (TAME, L-CAM: 2; T-TAME: 1)
    bias_weight_decay: bool = False  # weight decay on the biases too (L-CAM: true; TAME, T-TAME: false)
    schedule: choices.Schedule = "one_cycle"  # one_cycle (TAME, T-TAME) | epoch_decay (L-CAM: x lr_decay per epoch)
    lr_decay: float = 0.95  # epoch_decay's factor per epoch (L-CAM ResNet-50: 0.95, VGG-16: 0.75)
    lr_decay_epochs: int | None = None  # epoch_decay decays at epochs 1..N only (L-CAM: 12 and 22); null: every epoch
    momentum: float = 0.9  # SGD momentum when cycle_momentum is false (and in lr-find); 0 <= m < 1
    nesterov: bool = True  # Nesterov momentum (the reference); needs momentum > 0
    cycle_momentum: bool = True  # OneCycleLR cycles momentum max_momentum -> base_momentum -> max (the reference)
    base_momentum: float = 0.85  # the cycle's lowest momentum (at the LR peak)
    max_momentum: float = 0.95  # the cycle's highest momentum (at the start and the end)
    weight_decay: float = 5e-4
    optimizer: choices.Optimizer = "sgd"  # sgd (TAME, T-TAME, L-CAM) | adamw (P-TAME: amsgrad; momentum = beta1)
    loss: LossConfig = field(default_factory=LossConfig)
    regulariser: choices.Regulariser = "batch"  # batch | diagonal  (docs/METHOD.md, "The loss")
    label_source: choices.LabelSource = "model"  # model | list
    backbone_mode: choices.BackboneMode = "eval"  # eval | train  (train reproduces the reference)
    mask_space: choices.MaskSpaceSetting = "auto"  # where the mask multiplies the image: auto | pixels | normalised
    device: choices.Device = "auto"  # auto (this rank's GPU when CUDA is present, else CPU) | cuda | cpu
    amp: choices.Amp = "auto"  # auto (bf16 on GPU, off on CPU) | bf16 | fp16 | off
    channels_last: bool = True
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    checkpoint_every: int = 0  # also checkpoint every N steps (0: only at epoch ends)
    keep_checkpoints: int = 3  # newest step checkpoints kept (epoch checkpoints are all kept)
    resume: str = "auto"  # auto | none | path to a checkpoint
    max_steps_per_epoch: int = 0  # 0: the whole list (smaller values are for smoke runs)
    val_every: int = 0  # also validate every N steps (0: at epoch ends only); needs data.val_list
    val_samples: int = 0  # validate on the first N images of data.val_list (0: all of it)
    select_by: str = "AD(15%)"  # the validation metric that picks best.pt (see VAL_METRICS)
    val_class_sensitivity: int = 0  # also class sensitivity at each validation: 2 or 4 images per composite (0: off)


@dataclass
class LogConfig:
    wandb: choices.Wandb = "offline"  # online | offline | disabled
    project: str = "tame"
    run_name: str | None = None
    tensorboard: bool = True
    log_every: int = 20  # steps between scalar logs
    images_per_epoch: int = 4  # explanation maps logged at the end of each epoch


def option(default: Any, help: str, **flag: Any) -> Any:
    """A field of a command's section, documented where it is declared: its ``default``, its ``help`` (the text of
    the flag :func:`tame.commands.options.add_section_flags` generates from it) and how that flag is spelled:
    ``flags`` (names; default ``--field-name``; ``()``: no flag), ``nargs``, ``const``, ``metavar``, ``choices``,
    ``exclusive`` (fields of one mutually exclusive group share its name), ``shown`` (the default as the help
    states it). A ``bool`` flag named ``--no-...`` sets False; ``negatable`` gives ``--x`` / ``--no-x``."""
    default_is = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return field(**default_is, metadata={"help": help, **flag})


@dataclass
class ExplainConfig:
    """``explain``: what ``tame explain`` (:func:`tame.explain.gallery.explain_images`) explains and how. The
    preprocessing is the model's own (``data.resize`` / ``data.crop`` / ``data.interpolation`` resolved by the
    classifier), the class names ``model.class_names``."""

    methods: list[str] = option(
        ["tame"],
        "one or more methods: the baselines and tame (needs --checkpoint), which runs whichever family member "
        "the checkpoint holds: TAME, T-TAME, P-TAME, L-CAM-Img",
        flags=("--methods", "--method"),
        nargs="+",
        metavar="METHOD",
    )
    layer: str | None = option(None, "target layer of the CAM methods", shown="the model's last tapped layer")
    num_masks: int | None = option(None, "RISE: number of random masks", shown="4000")
    mask_batch: int | None = option(None, "RISE, Score-CAM, Ablation-CAM: masked images per forward")
    class_index: int | None = option(None, "explain this class index", flags=("--class",), exclusive="classes")
    top_k: int = option(1, "explain the k most probable classes", exclusive="classes")
    center_crop: bool = option(
        True,
        "explain the whole image, resized to the crop size (true, the default: resize the shorter side, then crop "
        "the centre)",
        flags=("--no-crop",),
    )
    out: str = option("explanations", "output folder")
    batch_size: int = option(16, "images per batch")
    device: str = option("auto", "cpu, cuda or cuda:N; auto: this process's GPU when there is one, else the CPU")


@dataclass
class EvalConfig:
    """``eval``: the data, protocol and runtime of ``tame eval`` (:func:`tame.evaluation.run_evaluation`), which
    ``tame compare`` (:func:`tame.evaluation.compare`) shares; the method(s) of each are ``eval.method`` and
    ``compare.methods``."""

    method: str = option("tame", "explanation method (tame: needs --checkpoint)")
    checkpoint: str | None = option(
        None, "TAME attention weights: a file, or a training folder (tame eval: every epoch_N.pt; compare: the newest)"
    )
    list_file: str | None = option(None, "evaluation list", flags=("--list",), shown="data.eval_list")
    root: str | None = option(None, "image root of the list", shown="data.val_root")
    out: str | None = option(None, "output folder", shown="eval/ beside the checkpoints, or <output_dir>/eval")
    levels: list[float] = option([1.0, 0.5, 0.15], "AD / IC levels: fractions of the map kept", flags=())
    road: bool | None = option(
        None,
        "also ROAD (MoRF/LeRF at 10..90% removed, noisy linear imputation; CPU-heavy)",
        negatable=True,
        shown="off for tame eval, on for tame compare",
    )
    road_workers: int | None = option(None, "threads for the ROAD imputation solves", shown="the cores, at most 8")
    boxes: str | None = option(
        None,
        "ground-truth boxes: the synthetic set's boxes.json, or JSON {list path: [[x0, y0, x1, y1], ...]} in crop "
        "pixels; adds the (energy) pointing game",
    )
    pointing_tolerance: float = option(0.0, "pointing-game tolerance in pixels")
    batch_size: int | None = option(
        None,
        "global batch: images per step over all processes, a multiple of their number",
        shown="data.batch_size",
    )
    chunk: int | None = option(None, "images per classifier forward on masked copies", shown="all of a batch")
    max_samples: int | None = option(None, "evaluate only the first N samples of the list", shown="all")
    num_masks: int = option(4000, "RISE: number of random masks")
    layer: str | None = option(None, "target layer of the CAM methods", shown="the model's last tapped layer")
    device: str = option("auto", "cpu, cuda or cuda:N; auto: this process's GPU when there is one, else the CPU")
    progress: bool = option(True, "no progress bar (true, the default: show one)", flags=("--no-progress",))
    per_image: str | None = option(
        None,
        "also write one row per image: list path, label, predicted class, Y, O at each level, pointing hit",
        metavar="FILE.csv",
    )
    per_class: bool = option(
        False, "also AD/IC and pointing game per class (grouped by the list's true label): a CSV and a printed table"
    )
    class_sensitivity: int = option(
        0,
        "also class sensitivity: composites of T (2 or 4) images of different labels, each label explained on the "
        "composite; where does each class's map fall (docs/METHOD.md)",
        nargs="?",
        const=2,
        choices=(2, 4),
        metavar="T",
        shown="off; T: 2",
    )
    composites: int | None = option(None, "class sensitivity: composites", shown="list images / T")


@dataclass
class CompareConfig:
    """``compare``: what ``tame compare`` adds to the ``eval`` section."""

    methods: list[str] | None = option(
        None,
        "methods to compare; a CAM method as NAME@LAYER; another trained AM of the family (TAME, T-TAME, P-TAME, "
        "L-CAM-Img: whichever the checkpoint holds) as LABEL=CHECKPOINT (p-tame=snapshots/resnet50_ptame/ "
        "lcam-img=snapshots/resnet50_lcam_img/)",
        nargs="+",
        metavar="METHOD",
        shown="all",
    )
    sanity_checks: int = option(
        0,
        "also the cascading-randomisation and random-logit sanity checks on the list's first N images (docs/METHOD.md)",
        nargs="?",
        const=32,
        metavar="N",
        shown="off; N: 32",
    )


@dataclass
class ExportConfig:
    """``export``: the file ``tame export`` (:func:`tame.export.export_model`) writes; its input size, resize and
    interpolation are the model's resolved ``data.crop`` / ``data.resize`` / ``data.interpolation``."""

    output: str | None = option(None, "the exported file (.onnx, .pt, .pt2)", flags=("-o", "--output"), required=True)
    format: choices.ExportFormat = option("onnx", "the file's format")
    dynamic_batch: bool = option(False, "any batch size (default: fixed --batch-size)")
    batch_size: int = option(1, "the fixed batch size without --dynamic-batch")
    opset: int = option(18, "ONNX opset (tame.export.exporters: 18..23)")
    input_dtype: choices.InputDtype = option("uint8", "image dtype", flags=("--input",))
    verify_images: list[str] | None = option(None, "verify on these", metavar="IMAGE", shown="random images")
    verify_count: int = option(4, "random images to verify on")
    device: str = option("cpu", "cpu, cuda or cuda:N; auto: this process's GPU when there is one, else the CPU")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    output_dir: str = "snapshots/run"


# validation metrics during training (tame.engine.validation) that train.select_by can pick the best epoch by;
# True where lower is better. The classifier's accuracy is reported too, but it is frozen: it picks nothing.
VAL_METRICS = {
    **{f"AD({level})": True for level in ("100%", "50%", "15%")},
    **{f"IC({level})": False for level in ("100%", "50%", "15%")},
    **{term: True for term in ("loss", "ce", "area", "var")},
}

_POSITIVE = ("data.batch_size", "data.resize", "data.crop", "train.epochs", "train.max_lr", "train.keep_checkpoints")
_POSITIVE += ("train.bias_lr_factor", "train.lr_decay", "train.lr_decay_epochs")
# None (or "auto" in YAML) means: the model's own value (tame.models.registry.build_classifier)
_AUTO = ("model.mean", "model.std", "model.prefix_tokens", "data.resize", "data.crop", "data.interpolation")
_AUTO += ("model.drop_rate",)
_AUTO += ("model.features.mean", "model.features.std", *(f"train.loss.{f.name}" for f in fields(LossConfig)))
_NON_NEGATIVE = ("model.prefix_tokens", "data.workers", "train.weight_decay", "train.checkpoint_every")
_NON_NEGATIVE += ("train.max_steps_per_epoch", "train.val_every", "train.val_samples")
_NON_NEGATIVE += ("log.log_every", "log.images_per_epoch", "train.seed")


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    values: Mapping[str, Any] | None = None,
) -> Config:
    """Read a YAML config (a file, or a shipped config's name: :mod:`tame.config.shipped`; or start from
    defaults), apply ``key=value`` overrides, then ``values`` (dotted key ->
    a Python value: what a command's flags set, :func:`tame.commands.options.flag_values`) and validate, once."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = load_yaml_file(resolve_config(path), "config file")
        if not isinstance(raw, dict):
            raise TameError(f"{path}: the top level must be a mapping of sections (model:, data:, train:, log:)")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TameError(f"override {item!r} is not key=value (e.g. train.max_lr=1e-3)")
        try:
            parsed = load_yaml(value, "value") if value.strip() else None
        except TameError as err:
            raise TameError(f"override {item[:80]!r}: the value is {str(err).removeprefix('value: ')}") from None
        _set_dotted(raw, key.strip(), parsed)
    for key, value in (values or {}).items():
        _set_dotted(raw, key, value)
    config = _build(Config, raw, "")
    resolve_lists(config.data)
    validate(config)
    return config


def _set_dotted(raw: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise TameError(f"override {key}: {part} is not a section")
    node[parts[-1]] = value


def _build(cls: type, raw: dict, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise TameError(f"config key {prefix.rstrip('.') or '(top)'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    odd = [key for key in raw if not isinstance(key, str)]
    if odd:  # YAML reads `1:`, `null:`, `yes:` as an int, None, True
        raise TameError(f"config key {prefix}{odd[0]!r}: keys must be names (quote it if you meant the text)")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        from tame.registry import close_matches

        key = unknown[0]
        close = close_matches(key, known, n=1)
        hint = f" (did you mean {prefix}{close[0]}?)" if close else f" (known: {', '.join(known)})"
        raise TameError(f"unknown config key {prefix}{key}{hint}")
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        if value == "auto" and f"{prefix}{name}" in _AUTO:
            value = None
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if value is None:  # `key:` in YAML or `key=` on the command line
        raise TameError(f"config key {key}: needs a value, got an empty one")
    if origin is Literal:  # a choice: read as a string here, checked against its values by ``validate``
        return _coerce(value, str, key)
    if origin is list:
        if isinstance(value, str):
            value = value.split()
        if not isinstance(value, (list, tuple)):
            raise TameError(f"config key {key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], key) for v in value]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TameError(f"config key {key}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TameError(f"config key {key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TameError(f"config key {key}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, bool):  # YAML 1.1 reads a bare off/on/no/yes as a boolean
            return "on" if value else "off"
        if isinstance(value, (str, int, float)):
            return str(value)
        raise TameError(f"config key {key}: expected a string, got {value!r}")
    return value


def _get(config: Config, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def validate(config: Config) -> None:
    """Check values that YAML types cannot express; the message names the key."""
    for key, alias, optional in _choice_fields(config):
        value = _get(config, key)
        if value is not None or not optional:  # None: auto, where the field allows it
            choices.check_choice(value, alias, f"config key {key}")
    _check_numbers(config)
    for key in _POSITIVE:
        value = _get(config, key)
        if value is not None and not value > 0:
            raise TameError(f"config key {key}: must be positive, got {value!r}")
    for key in _NON_NEGATIVE:
        if (_get(config, key) or 0) < 0:
            raise TameError(f"config key {key}: must not be negative, got {_get(config, key)!r}")
    if config.train.select_by not in VAL_METRICS:
        lower, higher = ([name for name, low in VAL_METRICS.items() if low is wanted] for wanted in (True, False))
        raise TameError(
            f"config key train.select_by: {config.train.select_by!r} is not a validation metric (lower is better: "
            f"{', '.join(lower)}; higher is better: {', '.join(higher)})"
        )
    if (rate := config.model.drop_rate) is not None and not 0 <= rate < 1:
        raise TameError(f"config key model.drop_rate: a dropout probability in [0, 1), got {rate!r}")
    if (classes := config.model.num_classes) is not None and classes < 1:
        raise TameError(f"config key model.num_classes: must be at least 1, got {classes} (0 removes the head)")
    which = "model.features.layers" if config.model.features.name else "model.layers"
    if not _get(config, which):
        raise TameError(f"config key {which}: name at least one layer (see `tame-inspect MODEL`)")
    if config.data.crop is not None and config.data.resize is not None and config.data.crop > config.data.resize:
        raise TameError(f"config key data.crop: {config.data.crop} is larger than data.resize={config.data.resize}")
    check_mean_std(config.model.mean, config.model.std)
    check_mean_std(config.model.features.mean, config.model.features.std, "model.features.mean", "model.features.std")
    check_momentum(config.train)
    check_commands(config)


_AT_LEAST_ONE = ("explain.top_k", "explain.batch_size", "explain.num_masks", "explain.mask_batch")
_AT_LEAST_ONE += ("eval.batch_size", "eval.chunk", "eval.max_samples", "eval.num_masks", "eval.road_workers")
_AT_LEAST_ONE += ("eval.composites", "export.batch_size", "export.verify_count")
CLASS_SENSITIVITY_TILES = (2, 4)  # images per composite (tame.metrics.class_sensitivity.TILES)


def key_name(key: str) -> str:
    """How an error names a command section's key: ``explain.top_k (--top-k)``, its flag beside it."""
    section, _, name = key.partition(".")
    spelled = {item.name: item.metadata.get("flags") for item in fields(typing.get_type_hints(Config)[section])}
    flags = spelled.get(name)
    flag = flags[0] if flags else f"--{name.replace('_', '-')}" if flags is None else None
    return f"{key} ({flag})" if flag else key


def check_commands(config: Config) -> None:
    """The command sections (``explain``, ``eval``, ``compare``): counts, levels, distances and output paths."""
    for key in _AT_LEAST_ONE:
        if (value := _get(config, key)) is not None and value < 1:
            raise TameError(f"{key_name(key)}: must be at least 1, got {value}")
    if (index := config.explain.class_index) is not None and index < 0:
        raise TameError(f"{key_name('explain.class_index')}: must not be negative, got {index}")
    if not config.explain.methods:
        raise TameError("explain.methods: name at least one method (tame, or a baseline)")
    evaluation = config.eval
    if evaluation.class_sensitivity not in (0, *CLASS_SENSITIVITY_TILES):
        raise TameError(
            f"{key_name('eval.class_sensitivity')}: 2 or 4 images per composite (0: off), "
            f"got {evaluation.class_sensitivity}"
        )
    if config.compare.sanity_checks < 0:
        raise TameError(f"{key_name('compare.sanity_checks')}: a number of images, got {config.compare.sanity_checks}")
    if config.compare.methods is not None and not config.compare.methods:
        raise TameError("compare.methods: name at least one method (null: all of them)")
    if not evaluation.levels or not all(0 < p <= 1 for p in evaluation.levels):
        raise TameError(f"eval.levels: must be fractions in (0, 1], got {list(evaluation.levels)}")
    if not 0 <= evaluation.pointing_tolerance < math.inf:
        tolerance = evaluation.pointing_tolerance
        raise TameError(f"{key_name('eval.pointing_tolerance')}: a distance in pixels (0 or more), got {tolerance}")
    _check_outputs(evaluation)


def _check_outputs(evaluation: EvalConfig) -> None:
    """``eval.per_image`` and ``eval.out`` must be writable: found now, not after the whole evaluation."""
    if (per_image := evaluation.per_image) is not None:
        if per_image == "":
            raise TameError("eval.per_image (--per-image): '' names no file; give the name of the CSV file to write")
        if os.path.isdir(per_image):
            raise TameError(f"--per-image {per_image} is a folder; give the name of the CSV file to write")
        check_writable_folder(Path(per_image).parent, f"--per-image {per_image}")
        writable_target(per_image)
    if evaluation.out is not None:
        if evaluation.out == "":
            raise TameError("eval.out (--out): '' names no folder; give the folder to write the results into")
        check_writable_folder(evaluation.out, f"--out {evaluation.out}")


def _choice_fields(config: Config) -> Iterator[tuple[str, Any, bool]]:
    """(dotted key, its ``Literal`` alias, whether None is allowed) of every field typed with a choice."""
    for section in fields(config):
        node = getattr(config, section.name)
        hints = typing.get_type_hints(type(node)) if dataclasses.is_dataclass(node) else {}
        for name, hint in hints.items():
            union = typing.get_origin(hint) in (typing.Union, types.UnionType)
            options = typing.get_args(hint) if union else (hint,)
            for alias in options:
                if typing.get_origin(alias) is Literal:
                    yield f"{section.name}.{name}", alias, type(None) in options


def _check_numbers(config: Config) -> None:
    """Every number of the config is finite (YAML reads ``.nan``, ``.inf`` and ``nan`` as floats)."""
    for section in fields(config):
        node = getattr(config, section.name)
        for item in fields(node) if dataclasses.is_dataclass(node) else ():
            value = getattr(node, item.name)
            for number in value if isinstance(value, list) else [value]:
                if isinstance(number, float) and not math.isfinite(number):
                    raise TameError(f"config key {section.name}.{item.name}: must be a finite number, got {value!r}")


def check_mean_std(mean, std, mean_what: str = "config key model.mean", std_what: str = "config key model.std") -> None:
    """Normalisation values: 3 finite numbers (R, G, B), every std > 0 (``None``: not set); the error names the
    source (``*_what``: the config key, or where else the values came from)."""
    for what, value in ((mean_what, mean), (std_what, std)):
        if value is None:
            continue
        if len(value) != 3:
            raise TameError(f"{what}: expected 3 values (R, G, B), got {list(value)!r}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            raise TameError(f"{what}: expected 3 finite numbers (R, G, B), got {list(value)!r}")
    if std is not None and min(std) <= 0:
        raise TameError(f"{std_what}: every value must be positive (images are divided by it), got {list(std)!r}")


_ENV = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def expand_path(value: str, key: str) -> Path:
    """Expand ``${VAR}`` in a path from the config; an unset variable is an error naming the key."""

    def substitute(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if not os.environ.get(name):  # set but empty would make "${DATA}/train.txt" a path under /
            state = "set but empty" if name in os.environ else "not set"
            raise TameError(
                f"config key {key}: {value!r} uses ${{{name}}}, which is {state} "
                f"(export {name}=/path/to/data, or set {key}=... on the command line)"
            )
        return os.environ[name]

    return Path(os.path.expanduser(_ENV.sub(substitute, value)))


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config (the exact values a run used) as YAML."""
    from tame.io import write_text_atomic

    write_text_atomic(path, yaml.safe_dump(asdict(config), sort_keys=False))
