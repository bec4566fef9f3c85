"""Per-class localisation and class sensitivity of the demo's explanations, for choosing its recipe (DEMO_FINDINGS).

    python -m benchmarks.demo_localisation prepare --out /tmp/dl            # data + held-out tuning split + classifier
    python -m benchmarks.demo_localisation leak --out /tmp/dl               # classifier on images masked by (1 - mask)
    python -m benchmarks.demo_localisation tame --out /tmp/dl --name base --threads 1 train.seed=1 ...
    python -m benchmarks.demo_localisation cams --out /tmp/dl               # Grad-CAM(++) on layer3 / layer4
    python -m benchmarks.demo_localisation brightness --out /tmp/dl         # classifier on images dimmed to t
    python -m benchmarks.demo_localisation masks --out /tmp/dl --name base  # a run's sigmoid masks per class

The recipe is chosen on ``OUT/tune`` (``tame datalist synth --seed 1``: images the demo never reports on); the
demo's report uses ``OUT/data/val.txt`` (seed 0). Every result is appended to ``OUT/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tame.config import load_config
from tame.data.boxes import boxes_to_mask
from tame.data.lists import read_list
from tame.evaluation.class_sensitivity import CompositeSet, measure
from tame.metrics.localisation import pointing_game

CONFIG = Path("configs/demo.yaml")


def base_overrides(out: Path, args: argparse.Namespace) -> list[str]:
    data = out / "data"
    return [
        f"model.name={args.classifier}",
        f"model.num_classes={args.classes}",
        f"model.weights={out / args.weights}",
        f"data.root={data}",
        f"data.train_list={data / 'train.txt'}",
        f"data.val_root={data}",
        f"data.val_list={data / 'val.txt'}",
        f"data.eval_list={data / 'val.txt'}",
        f"data.resize={args.size}",
        f"data.crop={args.size}",
        "log.tensorboard=false",
        "log.wandb=disabled",
    ]


def demo_model(out: Path, args: argparse.Namespace):
    """(the config of the tool's runs, the demo classifier of ``args.weights`` as a TameModel in eval mode)."""
    from tame.models import TameModel

    cfg = load_config(CONFIG, base_overrides(out, args))
    return cfg, TameModel.from_config(cfg.model, input_size=cfg.data.crop).eval()


def tune_classes(out: Path) -> list[str]:
    """The class names of the tuning split."""
    return json.loads((out / "tune" / "boxes.json").read_text())["classes"]


def prepare(out: Path, args: argparse.Namespace) -> None:
    from tame.data.synthetic import make_synthetic
    from tame.demo.classifier import ClassifierRecipe, train_classifier

    started = time.perf_counter()
    if not (out / "tune" / "boxes.json").is_file():
        make_synthetic(
            out / "data",
            classes=args.classes,
            train_per_class=args.train,
            val_per_class=args.val,
            size=args.size,
            seed=0,
        )
        make_synthetic(
            out / "tune", classes=args.classes, train_per_class=1, val_per_class=args.tune, size=args.size, seed=1
        )
    data_seconds = time.perf_counter() - started
    cfg = load_config(CONFIG, base_overrides(out, args))
    recipe = ClassifierRecipe(
        name=args.classifier,
        epochs=args.classifier_epochs,
        batch_size=32,
        blank_fraction=args.blank,
        seed=args.classifier_seed,
        occlusion_fraction=args.occlusion,
        hidden_fraction=args.hidden,
        dim_fraction=args.dim,
        dim_knee=args.knee,
    )
    started = time.perf_counter()
    result = train_classifier(recipe, replace(cfg.data, validate="none"), args.classes, out / args.weights)
    record(
        out,
        {
            "stage": "prepare",
            "weights": args.weights,
            "blank": args.blank,
            "occlusion": args.occlusion,
            "hidden": args.hidden,
            "dim": args.dim,
            "knee": args.knee,
            "data_s": data_seconds,
            "classifier_s": time.perf_counter() - started,
            "threads": torch.get_num_threads(),
            **result,
        },
    )


def record(out: Path, row: dict) -> None:
    print(json.dumps(row))
    with open(out / "results.jsonl", "a") as handle:
        handle.write(json.dumps(row) + "\n")


def eval_batches(cfg, list_file: Path, boxes_file: Path):
    """(images, labels, box regions, shape masks) over a list, in list order."""
    from tame.data import build_loader
    from tame.data.boxes import read_boxes
    from tame.distributed import Dist

    boxes = read_boxes(boxes_file, cfg.data.resize, cfg.data.crop)
    meta = json.loads(boxes_file.read_text())["images"]
    loader = build_loader(
        replace(cfg.data, validate="none"),
        list_file,
        list_file.parent,
        train=False,
        dist=Dist.local(),
        global_batch_size=64,
        num_classes=cfg.model.num_classes,
    )
    plan = loader.plan()
    size = (cfg.data.crop, cfg.data.crop)
    for k, (images, labels) in enumerate(loader):
        paths = [loader.entries[i].path for i in plan.indices[plan.batch(k)].tolist()]
        regions = torch.stack([boxes_to_mask(boxes[p], size) for p in paths])
        shapes = torch.stack(
            [torch.from_numpy(np.asarray(Image.open(list_file.parent / meta[p]["mask"])) > 127) for p in paths]
        )
        yield images, labels, regions, shapes


def per_class(hits: torch.Tensor, labels: torch.Tensor, classes: int) -> list[float]:  # pointing game (%) per class
    return [round(100.0 * hits[labels == k].float().mean().item(), 1) for k in range(classes)]


def explain_pg(explainer, cfg, list_file: Path, boxes_file: Path) -> dict:
    hits, labels_all, correct = [], [], []
    for images, labels, regions, _ in eval_batches(cfg, list_file, boxes_file):
        out = explainer.explain(images)  # the predicted class, as the demo's report
        hits.append(pointing_game(out.maps, regions))
        labels_all.append(labels)
        correct.append(out.classes == labels)
    hits, labels, correct = torch.cat(hits), torch.cat(labels_all), torch.cat(correct)
    pairs = CompositeSet(read_list(list_file), list_file.parent, cfg.data.resize, cfg.data.crop, cfg.data.interpolation)
    return {
        "pg": round(100.0 * hits.float().mean().item(), 1),
        "pg_per_class": per_class(hits, labels, cfg.model.num_classes),
        "accuracy": round(100.0 * correct.float().mean().item(), 1),
        "selective": round(measure(explainer, pairs, 2).selective, 1),  # class sensitivity, 2-image composites
    }


def tame_run(out: Path, args: argparse.Namespace) -> None:
    from tame.engine.train import train
    from tame.methods import create_explainer
    from tame.models import TameModel

    run_dir = out / "runs" / args.name
    overrides = [*base_overrides(out, args), f"output_dir={run_dir}", "train.resume=none", *args.overrides]
    cfg = load_config(CONFIG, overrides)
    started = time.perf_counter()
    if not (args.reuse and (run_dir / f"epoch_{cfg.train.epochs}.pt").is_file()):
        shutil.rmtree(run_dir, ignore_errors=True)
        train(cfg)
    seconds = time.perf_counter() - started
    model = TameModel.from_config(cfg.model, input_size=cfg.data.crop).eval()
    model.load_attention(run_dir / f"epoch_{cfg.train.epochs}.pt")
    row = {
        "stage": "tame",
        "name": args.name,
        "weights": args.weights,
        "threads": torch.get_num_threads(),
        "overrides": args.overrides,
        "train_s": round(seconds, 1),
    }
    with create_explainer("tame", model) as explainer:
        row["tune"] = explain_pg(explainer, cfg, out / "tune" / "val.txt", out / "tune" / "boxes.json")
        if args.report:
            row["report"] = explain_pg(explainer, cfg, out / "data" / "val.txt", out / "data" / "boxes.json")
    record(out, row)


def cams(out: Path, args: argparse.Namespace) -> None:
    from tame.methods import create_explainer

    cfg, model = demo_model(out, args)
    for method in ("gradcam", "gradcam++"):
        for layer in ("layer3", "layer4"):
            with create_explainer(method, model, layer=layer) as explainer:
                row = {"stage": "cam", "method": method, "layer": layer}
                for split in ("tune", "data"):
                    row[split] = explain_pg(explainer, cfg, out / split / "val.txt", out / split / "boxes.json")
                record(out, row)


@torch.no_grad()
def leak(out: Path, args: argparse.Namespace) -> None:
    """Does the classifier still recognise the class when the object is blacked out (only its hole remains)?"""

    cfg, model = demo_model(out, args)
    side = model.feature_shapes[0][1]  # the AM's mask resolution (the first tapped layer)

    def coarse(mask: torch.Tensor) -> torch.Tensor:  # like a TAME mask: low-res, bilinearly upsampled
        small = F.adaptive_avg_pool2d(mask[:, None].float(), side)
        return F.interpolate(small, size=mask.shape[-2:], mode="bilinear", align_corners=False)[:, 0]

    variants = {
        "image": lambda s, b: torch.ones_like(s, dtype=torch.float),
        "shape": lambda s, b: s.float(),
        "not_shape": lambda s, b: 1 - s.float(),
        "coarse_shape": lambda s, b: coarse(s),
        "not_coarse_shape": lambda s, b: 1 - coarse(s),
        "box": lambda s, b: b.float(),
        "not_box": lambda s, b: 1 - b.float(),
        "black": lambda s, b: torch.zeros_like(s, dtype=torch.float),
    }
    k = cfg.model.num_classes
    sums = {name: [[0.0, 0.0, 0] for _ in range(k)] for name in variants}  # [label prob, correct, n]
    predicted = {name: torch.zeros(k, k) for name in variants}
    for images, labels, regions, shapes in eval_batches(cfg, out / "tune" / "val.txt", out / "tune" / "boxes.json"):
        for name, make in variants.items():
            probs = model.predict(images * make(shapes, regions)[:, None]).softmax(dim=1)
            for i, label in enumerate(labels.tolist()):
                sums[name][label][0] += probs[i, label].item()
                sums[name][label][1] += float(probs[i].argmax().item() == label)
                sums[name][label][2] += 1
                predicted[name][label, probs[i].argmax()] += 1
    names = tune_classes(out)
    table = {
        name: {names[c]: [round(p / n, 3), round(100 * a / n, 1)] for c, (p, a, n) in enumerate(rows)}
        for name, rows in sums.items()
    }
    record(
        out,
        {
            "stage": "leak",
            "weights": args.weights,
            "prob_and_accuracy": table,
            "black_predicted_as": predicted["black"].sum(0).tolist(),
            "not_coarse_shape_predicted_as": {names[c]: predicted["not_coarse_shape"][c].tolist() for c in range(k)},
        },
    )


@torch.no_grad()
def brightness(out: Path, args: argparse.Namespace) -> None:
    """The classifier's label probability per class when the whole image is dimmed to t (a uniform TAME mask)."""

    cfg, model = demo_model(out, args)
    k, levels = cfg.model.num_classes, (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
    sums, counts = torch.zeros(k, len(levels)), torch.zeros(k)
    for images, labels, _, _ in eval_batches(cfg, out / "tune" / "val.txt", out / "tune" / "boxes.json"):
        for j, t in enumerate(levels):
            probs = model.predict(images * t).softmax(dim=1)
            sums[:, j] += torch.zeros(k).index_add_(0, labels, probs[torch.arange(len(labels)), labels])
        counts += torch.bincount(labels, minlength=k).float()
    names = tune_classes(out)
    table = {names[c]: [round(v, 3) for v in (sums[c] / counts[c]).tolist()] for c in range(k)}
    record(out, {"stage": "brightness", "weights": args.weights, "levels": levels, "label_probability": table})


@torch.no_grad()
def masks(out: Path, args: argparse.Namespace) -> None:
    """What a trained run's masks are (sigmoid, before min-max normalisation), per class on the tuning split: mean
    inside / outside the object, the area, and the classifier's probability of the explained class on
    ``mask * image`` and ``(1 - mask) * image``. A mask near 1 everywhere or near 0 everywhere is saturated: its
    map comes from what is left of the logits' variation, not from what TAME learned."""

    cfg, model = demo_model(out, args)
    model.load_attention(out / "runs" / args.name / f"epoch_{args.epoch}.pt")
    k = cfg.model.num_classes
    rows: list[list[torch.Tensor]] = [[] for _ in range(k)]
    for images, labels, _, shapes in eval_batches(cfg, out / "tune" / "val.txt", out / "tune" / "boxes.json"):
        logits, features = model.features(images)
        classes = logits.argmax(dim=1)
        small = torch.sigmoid(model.attention(features, classes, per_image=True))
        mask = F.interpolate(small, size=images.shape[-2:], mode="bilinear", align_corners=False)
        keep = model.predict(mask * images).softmax(dim=1)[torch.arange(len(images)), classes]
        drop = model.predict((1 - mask) * images).softmax(dim=1)[torch.arange(len(images)), classes]
        inside = (mask[:, 0] * shapes).flatten(1).sum(1) / shapes.flatten(1).sum(1)
        outside = (mask[:, 0] * ~shapes).flatten(1).sum(1) / (~shapes).flatten(1).sum(1)
        for i, label in enumerate(labels.tolist()):
            rows[label].append(torch.stack([inside[i], outside[i], mask[i].mean(), keep[i], drop[i]]))
    names = tune_classes(out)
    columns = ("inside", "outside", "area", "p(mask*image)", "p((1-mask)*image)")
    means = [torch.stack(rows[c]).mean(0).tolist() for c in range(k)]
    table = {names[c]: dict(zip(columns, [round(v, 3) for v in means[c]])) for c in range(k)}
    record(out, {"stage": "masks", "name": args.name, "epoch": args.epoch, "per_class": table})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("prepare", "leak", "brightness", "tame", "masks", "cams"))
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--name", default="run")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--train", type=int, default=200, help="training images per class")
    parser.add_argument("--val", type=int, default=40, help="report images per class (data/val.txt)")
    parser.add_argument("--tune", type=int, default=50, help="held-out tuning images per class (tune/val.txt)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--classifier", default="resnet10t")
    parser.add_argument("--classifier-epochs", type=int, default=12)
    parser.add_argument("--blank", type=float, default=0.0, help="ClassifierRecipe.blank_fraction")
    parser.add_argument("--occlusion", type=float, default=0.0, help="ClassifierRecipe.occlusion_fraction")
    parser.add_argument("--hidden", type=float, default=0.0, help="ClassifierRecipe.hidden_fraction")
    parser.add_argument("--dim", type=float, default=0.0, help="ClassifierRecipe.dim_fraction")
    parser.add_argument("--knee", type=float, default=1.0, help="ClassifierRecipe.dim_knee")
    parser.add_argument("--classifier-seed", type=int, default=0)
    parser.add_argument("--weights", default="classifier.pth", help="classifier file under OUT")
    parser.add_argument("--epoch", type=int, default=6, help="masks: the run's checkpoint epoch_N.pt to read")
    parser.add_argument("--reuse", action="store_true", help="tame: measure an already trained run of this name")
    parser.add_argument("--report", action="store_true", help="also measure on the report split")
    parser.add_argument("overrides", nargs="*", help="config overrides for the TAME run")
    args = parser.parse_intermixed_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    actions = {
        "prepare": prepare,
        "leak": leak,
        "brightness": brightness,
        "tame": tame_run,
        "masks": masks,
        "cams": cams,
    }
    actions[args.action](args.out, args)


if __name__ == "__main__":
    main()
