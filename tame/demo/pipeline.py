"""The whole method end to end on a CPU, offline: ``make demo`` (or ``tame demo --config configs/demo.yaml``).

Stages, each reused on a rerun when its inputs have not changed (``stage.json`` in its folder):
  1. data        the synthetic shapes set with ground-truth boxes (as ``tame datalist synth``)
  2. classifier  a small timm CNN trained from scratch on it: the stand-in for a pretrained ImageNet model
  3. lr-find     the LR range test of ``tame lr-find``
  4. tame        TAME trained on the frozen classifier by ``tame train``'s training (as the ImageNet runs)
     p-tame      P-TAME on the same classifier, its features from a copy of it (:mod:`tame.demo.ptame`)
  5. compare     TAME, Grad-CAM and Grad-CAM++ (each on layer3 and layer4) and a random-map control on the
                 validation set: AD/IC, pointing game, class sensitivity on two-image composites, ms/image
                 (:func:`tame.evaluation.compare`, as ``tame compare --class-sensitivity``)
  6. check       on the held-out tuning split (``tune/``, synthetic seed 1): which layer is each CAM's better one
                 (by AD(15%)), every method's class sensitivity there, and TAME's pointing game per class there
                 and on the report split
  7. sanity      the cascading model-parameter randomisation and random-logit sanity checks (docs/METHOD.md)
  8. report      report.html + report.md: results, loss and LR curves, maps beside the ground-truth boxes, maps of
                 each class on composites
The report split (``data/val.txt``) is never used to choose anything.
Every stage calls the package's functions directly (no command lines).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from tame.checkpoint.naming import epoch_file
from tame.config import Config, load_config
from tame.demo.ptame import ptame_stage
from tame.demo.sizes import DemoSize
from tame.demo.stages import Stage, run_stage
from tame.engine.lr_suggestion import format_lr
from tame.errors import TameError

logger = logging.getLogger(__name__)

CAMS = ("gradcam", "gradcam++")
CAM_LAYERS = ("layer3", "layer4")  # at 64 px layer4 is 2 x 2, layer3 4 x 4 (docs/DEMO_FINDINGS.md)
METHODS = ("tame", *[f"{cam}@{layer}" for cam in CAMS for layer in CAM_LAYERS], "random")
# The classifier's training recipe beyond DemoSize (docs/DEMO_FINDINGS.md): blank images with a uniform target (a
# black image, an empty TAME mask, is no class) and a quarter of each batch dimmed with its target mixed towards
# uniform below 25 % brightness, so that the classifier's confidence falls smoothly as a mask darkens the image.
# Without the dimming its confidence jumped between classes at 20-30 % brightness, TAME's masks saturated (all on or
# all off) within the first epoch, and the all-off class's map pointed away from the object. Occlusion training
# (ClassifierRecipe.occlusion_fraction / hidden_fraction) was tried and is off: it cost 8-18 points of accuracy.
CLASSIFIER_RECIPE = {"blank_fraction": 0.25, "dim_fraction": 0.25, "dim_knee": 0.25}
LR_RANGE = (1e-5, 1.0)  # start and end LR of the demo's range test
COMPARE_FORMAT = 4  # of the compare stage's recorded outputs (1: rows as strings; 2: no per_class; 3: no sensitivity)
CHECK_FORMAT = 2  # of the check stage's recorded outputs (1: no class sensitivity)
TILES = 2  # images per class-sensitivity composite
SANITY_IMAGES = 48  # the report split's first images (8 per class) for the sanity checks


@dataclass(frozen=True)
class DemoRun:
    """Where the demo writes and what it is made from: the config file, its overrides (paths into ``out``), the
    seed of the classifier's and TAME's training."""

    config_path: Path
    out: Path
    size: DemoSize
    overrides: tuple[str, ...]
    cfg: Config
    seed: int = 0

    def inputs(self, **extra) -> dict:
        """A stage's inputs: the config's text and overrides, and ``extra``."""
        return {"config": self.config_path.read_text(), "overrides": list(self.overrides), **extra}


def demo_config(config_path: Path, out: Path, size: DemoSize, seed: int = 0) -> tuple[Config, list[str]]:
    """The demo config with its paths pointed into ``out`` and TAME's seed (returned as overrides, so training
    sees the same)."""
    data = out / "data"
    overrides = [
        f"model.name={size.classifier}",
        f"model.num_classes={size.classes}",
        "model.pretrained=false",
        f"model.weights={out / 'classifier' / 'classifier.pth'}",
        f"model.class_names={data / 'classes.txt'}",
        f"data.root={data}",
        f"data.train_list={data / 'train.txt'}",
        f"data.val_root={data}",
        f"data.val_list={data / 'val.txt'}",
        f"data.eval_list={data / 'val.txt'}",
        f"data.resize={size.image_size}",
        f"data.crop={size.image_size}",
        f"data.batch_size={size.batch_size}",
        f"train.epochs={size.tame_epochs}",
        f"train.seed={seed}",
        f"output_dir={out / 'tame'}",
    ]
    return load_config(config_path, overrides), overrides


def run_demo(
    config_path: Path,
    out: Path,
    size: DemoSize = DemoSize(),
    force: bool = False,
    seed: int = 0,
    threads: int | None = None,
) -> Path:
    """Run every stage (reusing finished ones) and return the path of report.html.

    ``seed``: of the classifier's and TAME's training (the data are always the same); ``threads``: torch's CPU
    threads (default: every core). Results differ in float rounding between thread counts.
    """
    from tame.demo.report import write_demo_report

    if seed < 0 or (threads is not None and threads < 1):
        raise TameError(f"--seed must be >= 0 and --threads >= 1 (got --seed {seed}, --threads {threads})")
    torch.set_num_threads(threads or max(1, os.cpu_count() or 1))
    if not config_path.is_file():
        raise TameError(f"demo config not found: {config_path} (run from the repository root, or pass --config)")
    cfg, overrides = demo_config(config_path, out, size, seed)
    demo = DemoRun(config_path, out, size, tuple(overrides), cfg, seed)
    stages = {"data": _data_stage(demo, force)}
    force = force or not Stage(out / "data", {}, False).record.is_file()
    stages["classifier"] = _classifier_stage(demo, stages["data"], force)
    stages["lr-find"] = _lr_find_stage(demo, stages["classifier"], force)
    stages["tame"] = _train_stage(demo, stages["classifier"], stages["lr-find"], force)
    stages["p-tame"] = ptame_stage(demo, stages["classifier"], force)
    stages["compare"] = _compare_stage(demo, stages["tame"], force, stages["p-tame"])
    stages["check"] = _check_stage(demo, stages["tame"], force)
    stages["sanity"] = _sanity_stage(demo, stages["tame"], force, stages["p-tame"])
    return write_demo_report(cfg, out, size, stages, METHODS, torch.get_num_threads())


def _data_stage(demo: DemoRun, force: bool) -> dict:
    from tame.data.synthetic import make_synthetic

    size, folder = demo.size, demo.out / "data"

    def make() -> dict:
        synthetic = make_synthetic(
            folder,
            classes=size.classes,
            train_per_class=size.train_per_class,
            val_per_class=size.val_per_class,
            size=size.image_size,
            seed=0,
            progress=True,
        )
        # the held-out tuning split: other images (seed 1) on which the demo makes its choices
        make_synthetic(
            demo.out / "tune",
            classes=size.classes,
            train_per_class=1,
            val_per_class=size.tune_per_class,
            size=size.image_size,
            seed=1,
        )
        return {"classes": list(synthetic.classes)}

    inputs = {
        "classes": size.classes,
        "train": size.train_per_class,
        "val": size.val_per_class,
        "tune": size.tune_per_class,
        "size": size.image_size,
    }
    return run_stage("data", folder, inputs, force, make)


def _classifier_stage(demo: DemoRun, data: dict, force: bool) -> dict:
    from tame.demo.classifier import ClassifierRecipe, train_classifier

    size, folder = demo.size, demo.out / "classifier"
    recipe = ClassifierRecipe(
        name=size.classifier,
        epochs=size.classifier_epochs,
        batch_size=size.batch_size,
        seed=demo.seed,
        **CLASSIFIER_RECIPE,
    )
    return run_stage(
        "classifier",
        folder,
        {"recipe": asdict(recipe), "data": data, "crop": demo.cfg.data.crop},
        force,
        lambda: train_classifier(
            recipe, replace(demo.cfg.data, validate="none"), size.classes, folder / "classifier.pth"
        ),
    )


def _lr_find_stage(demo: DemoRun, classifier: dict, force: bool) -> dict:
    folder, steps = demo.out / "lr_find", demo.size.lr_find_steps
    inputs = demo.inputs(classifier=classifier, steps=steps)
    return run_stage("lr-find", folder, inputs, force, lambda: find_lr(demo.cfg, steps, folder))


def find_lr(cfg: Config, steps: int, folder: Path) -> dict:
    """``tame lr-find`` over ``steps`` batches (one process) from LR_RANGE[0] to LR_RANGE[1]: writes
    ``lr_find.json`` and ``lr_find.png`` to ``folder`` and returns the JSON's content."""
    from tame.engine.lr_find import RESULT_FILE, lr_range_test

    start_lr, end_lr = LR_RANGE
    result = lr_range_test(cfg, start_lr=start_lr, end_lr=end_lr, steps=steps, output_dir=folder)
    if result.suggested_max_lr is None:
        logger.info("tame demo: no suggested max LR (%s): TAME trains with the config's", result.suggestion_reason)
    else:
        logger.info("tame demo: suggested max LR %s: TAME trains with it", format_lr(result.suggested_max_lr))
    return json.loads((folder / RESULT_FILE).read_text())


def _train_stage(demo: DemoRun, classifier: dict, lr_find: dict, force: bool) -> dict:
    """TAME trained with the LR range test's suggested max LR, or the config's when the test suggested none."""
    from tame.engine.train import train

    max_lr = lr_find.get("suggested_max_lr") or demo.cfg.train.max_lr

    def make() -> dict:
        shutil.rmtree(demo.out / "tame", ignore_errors=True)  # a stale run's checkpoints would be refused
        train(load_config(demo.config_path, [*demo.overrides, f"train.max_lr={max_lr!r}", "train.resume=none"]))
        return {"checkpoint": str(epoch_file(demo.out / "tame", demo.size.tame_epochs)), "max_lr": max_lr}

    return run_stage("tame", demo.out / "tame", demo.inputs(classifier=classifier, max_lr=max_lr), force, make)


def _methods(ptame: dict | None) -> list[str]:
    """The methods compared: METHODS and, when its stage ran, P-TAME as a trained entry (:mod:`tame.demo.ptame`)."""
    return [*METHODS, *([f"p-tame={ptame['checkpoint']}"] if ptame else [])]


def _spec(demo: DemoRun, train: dict, methods: list[str], folder: Path, **options):
    """A comparison's config: ``methods`` with the demo's config and TAME checkpoint, without ROAD, written to
    ``folder``; ``options``: more keys of the ``eval`` section (``sanity_checks``: the ``compare`` section's)."""
    values = {"eval.checkpoint": train["checkpoint"], "compare.methods": methods, "eval.road": False}
    values |= {f"{'compare' if key == 'sanity_checks' else 'eval'}.{key}": value for key, value in options.items()}
    values["eval.out"] = str(folder)
    return load_config(demo.config_path, demo.overrides, {key: _plain(value) for key, value in values.items()})


def _plain(value):
    """A path as the config's string."""
    return str(value) if isinstance(value, Path) else value


def _compare_stage(demo: DemoRun, train: dict, force: bool, ptame: dict | None = None) -> dict:
    from tame.evaluation import compare
    from tame.evaluation.tables import class_records, sensitivity_records

    folder, methods = demo.out / "compare", _methods(ptame)

    def make() -> dict:
        boxes = demo.out / "data" / "boxes.json"
        spec = _spec(demo, train, methods, folder, boxes=boxes, per_class=True, class_sensitivity=TILES)
        comparison = compare(spec, str(demo.config_path))
        return {
            "results": {method: result.columns() for method, result in comparison.rows},
            "per_class": class_records(comparison.classes),
            "sensitivity": sensitivity_records(comparison.sensitivity),
        }

    inputs = {"train": train, "methods": methods, "format": COMPARE_FORMAT}
    return run_stage("compare", folder, inputs, force, make)


def _check_stage(demo: DemoRun, train: dict, force: bool) -> dict:
    from tame.demo.localisation import per_class_pointing_game
    from tame.evaluation import compare
    from tame.evaluation.tables import sensitivity_records

    folder, tune = demo.out / "check", demo.out / "tune"

    def make() -> dict:
        methods = [method for method in METHODS if method != "random"]
        where = {"list_file": tune / "val.txt", "root": tune, "boxes": tune / "boxes.json"}
        comparison = compare(
            _spec(demo, train, methods, folder, **where, class_sensitivity=TILES), str(demo.config_path)
        )
        ad15 = {label: result.columns()["AD(15%)"] for label, result in comparison.rows}
        better = {cam: min(CAM_LAYERS, key=lambda layer: ad15[f"{cam} ({layer})"]) for cam in CAMS}
        checkpoint = Path(train["checkpoint"])
        return {
            "tune_ad15": ad15,
            "better_layer": better,
            "tune_sensitivity": sensitivity_records(comparison.sensitivity),
            "pg_per_class": {
                "report": per_class_pointing_game(demo.cfg, checkpoint, demo.out / "data"),
                "tune": per_class_pointing_game(demo.cfg, checkpoint, tune),
            },
        }

    inputs = {"train": train, "methods": list(METHODS), "format": CHECK_FORMAT}
    return run_stage("check", folder, inputs, force, make)


def _sanity_stage(demo: DemoRun, train: dict, force: bool, ptame: dict | None = None) -> dict:
    """The sanity checks of every method (P-TAME's too) on the report split's first SANITY_IMAGES images."""
    from tame.evaluation import compare

    folder, methods = demo.out / "sanity", _methods(ptame)

    def make() -> dict:
        spec = _spec(demo, train, methods, folder, max_samples=SANITY_IMAGES, sanity_checks=SANITY_IMAGES)
        return {"sanity": dict(compare(spec, str(demo.config_path)).sanity)}

    inputs = {"train": train, "methods": methods, "images": SANITY_IMAGES}
    return run_stage("sanity", folder, inputs, force, make)
