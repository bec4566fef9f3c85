"""The whole method end to end on a CPU, offline: ``make demo`` (or ``tame demo --config configs/demo.yaml``).

Stages, each reused on a rerun when its inputs have not changed (``stage.json`` in its folder):
  1. data        the synthetic shapes set with ground-truth boxes (``tame datalist synth``)
  2. classifier  a small timm CNN trained from scratch on it: the stand-in for a pretrained ImageNet model
  3. lr-find     the LR range test of ``tame lr-find``
  4. tame        TAME trained on the frozen classifier by ``tame train`` (same code as the ImageNet runs)
  5. compare     TAME, Grad-CAM, Grad-CAM++ and a random-map control on the validation set: AD/IC, pointing
                 game, ms/image (``tame compare``)
  6. report      report.html + report.md: results, loss and LR curves, maps beside the ground-truth boxes
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from tame.config import Config, load_config
from tame.errors import TameError
from tame.io import write_text_atomic

METHODS = ("tame", "gradcam", "gradcam++", "random")


@dataclass(frozen=True)
class DemoSize:
    classes: int = 6
    train_per_class: int = 200
    val_per_class: int = 40
    image_size: int = 64
    classifier: str = "resnet10t"
    classifier_epochs: int = 12
    tame_epochs: int = 6
    lr_find_steps: int = 40
    gallery: int = 6
    batch_size: int = 32


QUICK = DemoSize(
    classes=3,
    train_per_class=8,
    val_per_class=4,
    image_size=64,
    classifier="test_resnet",
    classifier_epochs=1,
    tame_epochs=1,
    lr_find_steps=4,
    gallery=2,
    batch_size=8,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default="configs/demo.yaml", help="the demo's TAME config (default configs/demo.yaml)"
    )
    parser.add_argument("--out", default="demo", help="output folder (default demo/); finished stages are reused")
    parser.add_argument("--quick", action="store_true", help="a reduced-size run that checks the machinery (tests)")
    parser.add_argument("--force", action="store_true", help="redo every stage")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    size = QUICK if args.quick else DemoSize()
    report = run_demo(Path(args.config), Path(args.out), size, force=args.force)
    print(f"tame demo: finished in {time.perf_counter() - started:.0f} s; open {report}")
    return 0


class Stage:
    """A folder whose ``stage.json`` records the inputs it was made from; reused while they are unchanged."""

    def __init__(self, folder: Path, inputs: dict, force: bool) -> None:
        self.folder, self.inputs = folder, inputs
        self.record = folder / "stage.json"
        self.done = not force and self.record.is_file() and json.loads(self.record.read_text()).get("inputs") == inputs

    def finish(self, outputs: dict) -> dict:
        write_text_atomic(self.record, json.dumps({"inputs": self.inputs, "outputs": outputs}, indent=1))
        return outputs

    def outputs(self) -> dict:
        return json.loads(self.record.read_text())["outputs"]


def _stage(name: str, folder: Path, inputs: dict, force: bool, make: Callable[[], dict]) -> dict:
    stage = Stage(folder, inputs, force)
    if stage.done:
        print(f"tame demo: [{name}] reusing {folder}")
        return stage.outputs()
    print(f"tame demo: [{name}] ...", flush=True)
    started = time.perf_counter()
    outputs = make()
    outputs["seconds"] = round(time.perf_counter() - started, 1)
    return stage.finish(outputs)


def demo_config(config_path: Path, out: Path, size: DemoSize) -> tuple[Config, list[str]]:
    """The demo config with its paths pointed into ``out`` (returned as overrides, so `tame train` sees the same)."""
    data = out / "data"
    overrides = [
        f"model.name={size.classifier}",
        f"model.num_classes={size.classes}",
        "model.pretrained=false",
        f"model.weights={out / 'classifier' / 'classifier.pth'}",
        f"data.root={data}",
        f"data.train_list={data / 'train.txt'}",
        f"data.val_root={data}",
        f"data.val_list={data / 'val.txt'}",
        f"data.eval_list={data / 'val.txt'}",
        f"data.resize={size.image_size}",
        f"data.crop={size.image_size}",
        f"data.batch_size={size.batch_size}",
        f"train.epochs={size.tame_epochs}",
        f"output_dir={out / 'tame'}",
    ]
    return load_config(config_path, overrides), overrides


def run_demo(config_path: Path, out: Path, size: DemoSize = DemoSize(), force: bool = False) -> Path:
    """Run every stage (reusing finished ones) and return the path of report.html."""
    from tame.cli import main as tame_cli
    from tame.data.synthetic import make_synthetic
    from tame.demo.classifier import ClassifierRecipe, train_classifier

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    if not config_path.is_file():
        raise TameError(f"demo config not found: {config_path} (run from the repository root, or pass --config)")
    cfg, overrides = demo_config(config_path, out, size)
    config_text = config_path.read_text()

    data = _stage(
        "data",
        out / "data",
        {"classes": size.classes, "train": size.train_per_class, "val": size.val_per_class, "size": size.image_size},
        force,
        lambda: {
            "classes": list(
                make_synthetic(
                    out / "data",
                    classes=size.classes,
                    train_per_class=size.train_per_class,
                    val_per_class=size.val_per_class,
                    size=size.image_size,
                    seed=0,
                    progress=True,
                ).classes
            )
        },
    )
    force = force or not Stage(out / "data", {}, False).record.is_file()

    recipe = ClassifierRecipe(name=size.classifier, epochs=size.classifier_epochs, batch_size=size.batch_size)
    classifier = _stage(
        "classifier",
        out / "classifier",
        {"recipe": asdict(recipe), "data": data, "crop": cfg.data.crop},
        force,
        lambda: train_classifier(
            recipe, replace(cfg.data, validate="none"), size.classes, out / "classifier" / "classifier.pth"
        ),
    )

    def cli(*argv: str) -> None:
        code = tame_cli(list(argv))
        if code:
            raise TameError(f"`tame {' '.join(argv[:1])}` failed (exit {code}); see the message above")

    lr_dir = out / "lr_find"
    lr = _stage(
        "lr-find",
        lr_dir,
        {"config": config_text, "overrides": overrides, "classifier": classifier, "steps": size.lr_find_steps},
        force,
        lambda: (
            cli(
                "lr-find",
                "--config",
                str(config_path),
                *overrides,
                "--steps",
                str(size.lr_find_steps),
                "--start-lr",
                "1e-5",
                "--end-lr",
                "1",
                "--out",
                str(lr_dir),
            ),
            json.loads((lr_dir / "lr_find.json").read_text()),
        )[1],
    )

    def train_tame() -> dict:
        shutil.rmtree(out / "tame", ignore_errors=True)  # a stale run's checkpoints would be refused (resume=none)
        cli("train", "--config", str(config_path), *overrides, "train.resume=none")
        return {"checkpoint": str(out / "tame" / f"epoch_{size.tame_epochs}.pt")}

    train = _stage(
        "tame",
        out / "tame",
        {"config": config_text, "overrides": overrides, "classifier": classifier},
        force,
        train_tame,
    )

    compare_dir = out / "compare"
    compare = _stage(
        "compare",
        compare_dir,
        {"train": train, "methods": list(METHODS)},
        force,
        lambda: _compare(cli, config_path, overrides, Path(train["checkpoint"]), out, compare_dir),
    )

    return _report(cfg, out, size, data, classifier, lr, train, compare)


def _compare(cli, config_path: Path, overrides: list[str], checkpoint: Path, out: Path, folder: Path) -> dict:
    cli(
        "compare",
        "--config",
        str(config_path),
        *overrides,
        "--checkpoint",
        str(checkpoint),
        "--methods",
        *METHODS,
        "--no-road",
        "--boxes",
        str(out / "data" / "boxes.json"),
        "--out",
        str(folder),
    )
    with open(folder / "compare.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {"rows": rows}


def _report(
    cfg: Config, out: Path, size: DemoSize, data: dict, classifier: dict, lr: dict, train: dict, compare: dict
) -> Path:
    from tame.demo.gallery import write_gallery
    from tame.viz.report import Report, write_report

    rows = compare["rows"]
    columns = ["AD(100%)", "IC(100%)", "AD(50%)", "IC(50%)", "AD(15%)", "IC(15%)", "PG", "EBPG", "ms/img"]
    header = ["method", *[c for c in columns if rows and c in rows[0]]]
    table = [[row["method"], *[f"{float(row[c]):.2f}" for c in header[1:]]] for row in rows]
    by_method = {row["method"]: row for row in rows}
    summary = [
        f"A {size.classifier} classifier trained from scratch on {size.classes} synthetic shape classes "
        f"({size.train_per_class} training images per class, {size.image_size} px) reaches "
        f"{100 * classifier['val_accuracy']:.1f} % validation accuracy; TAME was trained on it for "
        f"{size.tame_epochs} epochs and compared with Grad-CAM, Grad-CAM++ and random maps on "
        f"{size.classes * size.val_per_class} validation images.",
        "AD: average drop in the class probability when only the map's top pixels are kept (lower is better); "
        "IC: share of images whose probability increases (higher is better); PG: pointing game hit rate, EBPG: "
        "share of the map's energy inside the object's box (higher is better).",
    ]
    if "tame" in by_method and "random" in by_method:
        tame, control = by_method["tame"], by_method["random"]
        beats = float(tame["AD(100%)"]) < float(control["AD(100%)"]) and float(tame["PG"]) > float(control["PG"])
        summary.append(
            f"TAME {'beats' if beats else 'does NOT beat'} the random-map control on AD(100%) "
            f"({float(tame['AD(100%)']):.1f} vs {float(control['AD(100%)']):.1f}) and the pointing game "
            f"({float(tame['PG']):.1f} vs {float(control['PG']):.1f})."
        )
    gallery = write_gallery(cfg, out, size.gallery, METHODS)
    figures = [
        (caption, os.path.relpath(path, out))
        for caption, path in (
            ("TAME training losses", out / "tame" / "loss_curve.png"),
            ("LR range test (suggested max LR marked)", out / "lr_find" / "lr_find.png"),
            ("AD / IC by method", out / "compare" / "compare.png"),
        )
        if path.is_file()
    ]
    facts = {
        "stage seconds": ", ".join(
            f"{name} {stage.get('seconds', 0):.0f}"
            for name, stage in (
                ("data", data),
                ("classifier", classifier),
                ("lr-find", lr),
                ("tame", train),
                ("compare", compare),
            )
        ),
        "suggested max LR": f"{lr.get('suggested_max_lr')}",
        "config": f"{cfg.model.name}, layers {' '.join(cfg.model.layers)}, {cfg.train.epochs} epochs, "
        f"max LR {cfg.train.max_lr}, batch {cfg.data.batch_size}, regulariser {cfg.train.regulariser}",
        "checkpoint": train["checkpoint"],
    }
    report = Report(
        "TAME demo: synthetic shapes, CPU only",
        summary,
        header,
        table,
        figures,
        [(caption, os.path.relpath(path, out)) for caption, path in gallery],
        facts,
    )
    html_path, _ = write_report(report, out)
    print("\n".join(summary[-1:]))
    return html_path
