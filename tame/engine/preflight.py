"""``tame train --check``: what would fail after torchrun has started N processes, found before it starts.

    tame train --check --config configs/resnet50.yaml --nproc 4

Builds the model as the run will (a ``module:function`` import, ``model.weights``, every layer name with the
closest names), reads the lists the config names (entries, labels against the model's classes, the files behind
the training list) and their image roots, and checks the batch split, the device, the data backend and the output
folder. Every problem is one line; the run starts only when there are none. The validation and evaluation lists
are not read by the training: their problems are warnings (``tame eval`` would fail on them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tame import distributed
from tame.checkpoint.resume import resume_file
from tame.config import Config, expand_path
from tame.data.check import validate_list
from tame.data.lists import ListEntry, Problem, first_problem_error, parse_list
from tame.data.loaders import per_rank_batch, resolve_backend
from tame.data.sharding import num_batches
from tame.engine.run_lock import check_output_dir
from tame.engine.train import check_data_paths
from tame.engine.validation import validation_paths
from tame.errors import TameError
from tame.models import TameModel
from tame.models.auxiliary import feature_network_from_config, tapped_layers
from tame.models.inspect import feature_layers, layer_problems
from tame.models.registry import build_classifier

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Preflight:
    """What ``tame train --check`` found: a summary, the problems that stop the run, warnings that do not."""

    summary: list[str] = field(default_factory=list)  # model, layers with shapes, AM size, lists
    problems: list[str] = field(default_factory=list)  # one line each
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def attempt(self, check: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``check(*args, **kwargs)``; a TameError becomes a problem (and None)."""
        try:
            return check(*args, **kwargs)
        except TameError as err:
            self.problems.append(str(err))
            return None


def check_training(cfg: Config, processes_per_node: int = 1) -> Preflight:
    """Everything ``tame train`` (on ``processes_per_node`` processes per node) can be checked for before it starts."""
    report = Preflight()
    report.attempt(per_rank_batch, cfg.data.batch_size, processes_per_node)  # the global batch splits evenly
    device = report.attempt(
        distributed.pick_device, cfg.train.device, local_rank=0, local_world_size=processes_per_node
    )
    backend = report.attempt(resolve_backend, cfg.data.backend, device) if device is not None else None
    output_dir = report.attempt(expand_path, cfg.output_dir, "output_dir")
    if output_dir is not None:
        report.attempt(check_output_dir, cfg.output_dir, output_dir)  # refused folders, a run of someone else's
    report.attempt(validation_paths, cfg)  # validation during training reads data.val_list
    if cfg.train.resume not in ("auto", "none"):
        report.attempt(resume_file, cfg.train.resume)
    report.summary.append(
        f"run        {processes_per_node} process(es) per node on {device or '?'}, data backend {backend or '?'}, "
        f"output {output_dir or '?'}"
    )
    model = check_model(cfg, report)
    num_classes = model.num_classes if model is not None else None
    check_training_list(cfg, num_classes, processes_per_node, report)
    check_evaluation_lists(cfg, num_classes, report)
    return report


def check_model(cfg: Config, report: Preflight) -> TameModel | None:
    """Build the classifier (weights included) and the AM as ``TameModel.from_config`` does; every bad layer name
    is its own problem. Adds the model, layer and AM lines to the summary."""
    try:
        cfg, classifier = build_classifier(cfg)  # imports a module:function name; the model's own preprocessing
        model_cfg, data_cfg = cfg.model, cfg.data
        aux = feature_network_from_config(model_cfg, classifier.preprocessing)  # P-TAME's auxiliary network
        tapped, key = (classifier, "model.layers") if aux is None else (aux, "model.features.layers")
        layers = feature_layers(tapped, data_cfg.crop)
    except TameError as err:
        report.problems.append(str(err))
        return None
    bad = layer_problems(tapped, layers, tapped_layers(model_cfg), tapped.name)
    report.problems.extend(f"config key {key}: {problem}" for problem in bad)
    if bad:
        return None
    try:
        model = TameModel.from_config(model_cfg, data_cfg.crop, cfg.train, classifier=classifier)
    except TameError as err:
        report.problems.append(str(err))
        return None
    p, (height, width) = classifier.preprocessing, model.attention.size
    am_size = sum(parameter.numel() for parameter in model.attention.parameters())
    shapes = (f"{name} {'x'.join(map(str, shape))}" for name, shape in zip(model.layers, model.feature_shapes))
    report.summary += [
        f"model      {model_cfg.name}: {model.num_classes} classes, {data_cfg.crop}x{data_cfg.crop} crop of "
        f"{p.resize} ({p.interpolation}), mean {_floats(p.mean)} std {_floats(p.std)}",
        *(
            []
            if aux is None
            else [
                f"features   {aux.name} (auxiliary, frozen): mean {_floats(aux.mean.flatten().tolist())} "
                f"std {_floats(aux.std.flatten().tolist())}; the classifier is only called on images"
            ]
        ),
        f"layers     {', '.join(shapes)}",
        f"attention  {model_cfg.version}: {am_size:,} parameters, maps {height}x{width}, training mask on the "
        f"{'normalised image' if model.mask_space == 'normalised' else 'image in [0, 1]'}",
    ]
    return model


def check_training_list(cfg: Config, num_classes: int | None, processes: int, report: Preflight) -> None:
    """The training list and root: every line, every file (unless ``data.validate=none``), one batch at least."""
    paths = report.attempt(check_data_paths, cfg)
    if paths is None:
        return
    root, list_file = paths
    by_labels = cfg.train.label_source == "list"
    entries = report.attempt(
        read_checked_list, list_file, root, "data.train_list", num_classes if by_labels else None, cfg
    )
    if entries is None:
        return
    steps = num_batches(len(entries), train=True, world_size=processes, batch_size=cfg.data.batch_size // processes)
    if cfg.train.max_steps_per_epoch:
        steps = min(steps, cfg.train.max_steps_per_epoch)
    if steps == 0:
        report.problems.append(
            f"config key data.batch_size: the training list has {len(entries)} images, fewer than one batch of "
            f"{cfg.data.batch_size}; use a smaller batch or a longer list"
        )
    used = "" if by_labels else " (not used: train.label_source=model)"
    report.summary.append(
        f"train      {list_file}: {len(entries):,} images, {_labels(entries)}{used}; {steps:,} steps per epoch of "
        f"{cfg.data.batch_size}"
    )


def check_evaluation_lists(cfg: Config, num_classes: int | None, report: Preflight) -> None:
    """``data.val_list`` (validated after every epoch: a problem is an error) and ``data.eval_list`` (read by
    ``tame eval``, not by training: a problem is a note in the summary)."""
    checked: dict[Path, str] = {}
    for key, value in (("data.val_list", cfg.data.val_list), ("data.eval_list", cfg.data.eval_list)):
        if not value:
            continue
        name = key.removeprefix("data.").removesuffix("_list")
        try:
            root = expand_path(cfg.data.val_root, "data.val_root")
            list_file = expand_path(value, key)
            if list_file in checked:
                report.summary.append(f"{name:<10} {list_file}: as data.{checked[list_file]}_list")
                continue
            if not root.is_dir():
                raise TameError(f"config key data.val_root: image folder {root} not found")
            entries = read_checked_list(list_file, root, key, num_classes, cfg)
        except TameError as err:
            if key == "data.val_list":
                report.problems.append(f"{err} (validation after every epoch reads it; data.val_list=null: none)")
            else:
                report.summary.append(f"{name:<10} not checked: {err} (`tame eval` reads it; the training does not)")
            continue
        checked[list_file] = name
        report.summary.append(f"{name:<10} {list_file}: {len(entries):,} images, {_labels(entries)}")


def read_checked_list(list_file: Path, root: Path, key: str, num_classes: int | None, cfg: Config) -> list[ListEntry]:
    """The list's entries; its first bad line (format, label >= ``num_classes``, a missing or empty file unless
    ``data.validate=none``) or no entry at all is a TameError naming the key."""
    if not list_file.is_file():
        raise TameError(f"config key {key}: list file {list_file} not found")
    entries, problems = parse_list(list_file, num_classes)
    if cfg.data.validate != "none" and entries:
        found = validate_list(entries, root, workers=max(8, cfg.data.workers), progress=True).problems
        problems = sorted(problems + found, key=_line)
    if problems:
        raise TameError(f"config key {key}: {first_problem_error(list_file, problems, root)}")
    if not entries:
        raise TameError(f"config key {key}: {list_file} has no entries")
    return entries


def _line(problem: Problem) -> int:
    return problem.line


def _labels(entries: list[ListEntry]) -> str:
    labels = {entry.label for entry in entries}
    return f"{len(labels)} labels in {min(labels)}..{max(labels)}"


def _floats(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in values) + ")"
