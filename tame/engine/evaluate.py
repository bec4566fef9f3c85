"""Evaluate explanation maps: AD / IC at 100 %, 50 %, 15 % (DESIGN section 2), ROAD and localisation.

  tame eval --config configs/resnet50.yaml --checkpoint snapshots/resnet50/             # every epoch_*.pt
  tame eval --config configs/resnet50.yaml --checkpoint snapshots/resnet50/epoch_4.pt --road
  tame eval --config configs/resnet50.yaml --method gradcam --list datalist/ILSVRC/Evaluation_2000.txt
  tame eval --config configs/synthetic.yaml --checkpoint snapshots/synthetic/ --boxes data/synthetic/boxes.json
  torchrun --standalone --nproc_per_node=4 -m tame.cli eval --config configs/resnet50.yaml --checkpoint DIR

Batched: one forward gives logits and the map of the predicted class; the three masked copies of the batch then go
through the classifier alone (never the AM again). Sharded: rank r evaluates list positions r, r+W, ...; padding
samples (label -1) are dropped and the per-metric sums are all-reduced, so every sample counts exactly once.
Writes ``<out>/<method>_<list>.csv`` (the reference's columns ``epoch,AD(100%),IC(100%),...``, then ROAD and
localisation columns when asked for) and a ``.json`` with every number, updated after each checkpoint, and prints a
summary table. Default ``out``: ``eval/`` beside the checkpoints (TAME) or ``<output_dir>/eval`` (baselines).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from tame import distributed
from tame.baselines import Explainer, create_explainer, list_methods, resolve_method
from tame.config import Config, expand_path, load_config
from tame.distributed import Dist
from tame.errors import TameError
from tame.io import write_text_atomic
from tame.metrics import ad_ic, road
from tame.metrics.ad_ic import class_probability, confidence_drop, confidence_increase, keep_top_fraction, level_name
from tame.metrics.localisation import boxes_to_mask, energy_pointing_game, pointing_game
from tame.models import TameModel
from tame.options import add_device_option

if TYPE_CHECKING:
    from tame.data.sharding import Loader

AD_IC_COLUMNS = [f"{metric}({level_name(p)})" for p in ad_ic.LEVELS for metric in ("AD", "IC")]


@dataclass
class EvaluationResult:
    """The numbers of one evaluation (percentages, except the probabilities and ``ms_per_image``)."""

    num_samples: int
    ad: dict[str, float]  # "100%" -> AD
    ic: dict[str, float]
    # ROAD: morf|lerf -> "10%" -> {accuracy (percent), probability (mean, 0..1)}
    road: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    pointing_game: float | None = None  # hit rate in percent
    energy_pointing_game: float | None = None  # mean share of map energy inside the ground truth, in percent
    # time of ``explain`` (the forward that gives the map) per image and device; the first batch (warm-up) is
    # left out when there are more
    ms_per_image: float = 0.0

    def columns(self) -> dict[str, float]:
        """Flat ``column -> value``: the reference's AD/IC columns first, then ROAD, localisation, timing."""
        row = {}
        for level in self.ad:
            row[f"AD({level})"] = self.ad[level]
            row[f"IC({level})"] = self.ic[level]
        for order, levels in self.road.items():
            for level, values in levels.items():
                row[f"ROAD-{order.upper()}-acc({level})"] = values["accuracy"]
                row[f"ROAD-{order.upper()}-prob({level})"] = values["probability"]
        if self.pointing_game is not None:
            row["PG"] = self.pointing_game
            row["EBPG"] = self.energy_pointing_game
        row["ms/img"] = self.ms_per_image
        return row


class MetricSums:
    """Named float64 sums over samples, all-reduced across ranks at the end (every rank holds the same keys)."""

    def __init__(self, keys: Sequence[str], device: torch.device) -> None:
        self.keys = list(keys)
        self.values = torch.zeros(len(self.keys), dtype=torch.float64, device=device)
        self._index = {key: i for i, key in enumerate(self.keys)}

    def add(self, key: str, values: torch.Tensor | float) -> None:
        total = values.double().sum() if isinstance(values, torch.Tensor) else torch.tensor(float(values))
        self.values[self._index[key]] += total.to(self.values.device)

    def reduced(self) -> dict[str, float]:
        return dict(zip(self.keys, distributed.all_reduce_total(self.values).tolist()))


def _sum_keys(levels: Sequence[float], road_levels: Sequence[float], localisation: bool) -> list[str]:
    keys = ["count", "seconds", "timed", "first_seconds", "first_timed"] + [
        f"{name}/{p}" for p in levels for name in ("drop", "increase")
    ]
    keys += [
        f"road/{order}/{q}/{name}" for order in road.ORDERS for q in road_levels for name in ("correct", "probability")
    ]
    if localisation:
        keys += ["regions", "pointing", "energy"]
    return keys


def _predict(explainer: Explainer, images: torch.Tensor, chunk: int | None) -> torch.Tensor:
    """Classifier logits [N, K] for N images, ``chunk`` images per forward (None: all at once)."""
    if chunk is None or images.shape[0] <= chunk:
        return explainer.predict(images)
    return torch.cat([explainer.predict(part) for part in images.split(chunk)])


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate(
    explainer: Explainer,
    batches: Iterable,
    *,
    levels: Sequence[float] = ad_ic.LEVELS,
    road_levels: Sequence[float] = (),
    road_seed: int = 0,
    road_workers: int = 1,
    localisation: bool = False,
    pointing_tolerance: float = 0.0,
    chunk: int | None = None,
    progress: bool = False,
    total: int | None = None,
    desc: str = "eval",
) -> EvaluationResult:
    """AD/IC at ``levels`` (and ROAD at ``road_levels``, localisation) of ``explainer`` over ``batches``.

    ``batches`` yields ``(images [B, 3, H, W] in [0, 1], labels [B])`` or, for localisation,
    ``(images, labels, regions bool [B, H, W])``; samples labelled -1 (a sharded loader's padding) are dropped.
    The explained class is the classifier's prediction. ``chunk``: images per classifier forward on masked inputs
    (None: all masked copies of a batch in one forward). Under torch.distributed the sums are all-reduced.
    """
    device: torch.device | None = None
    sums: MetricSums | None = None
    warm = False  # the first explained batch pays one-off costs (kernel selection, lazy imports): timed apart
    for batch in tqdm(batches, total=total, desc=desc, unit="batch", disable=not progress, dynamic_ncols=True):
        if localisation and len(batch) < 3:
            raise TameError("localisation needs batches of (images, labels, regions)")
        images, labels = batch[0], batch[1]
        regions = batch[2] if localisation else None
        if device is None:
            device = images.device
            sums = MetricSums(_sum_keys(levels, road_levels, localisation), device)
        keep = labels >= 0
        if not bool(keep.all()):
            images = images[keep]
            regions = regions[keep] if regions is not None else None
        if images.shape[0] == 0:
            continue

        _synchronise(device)
        start = time.perf_counter()
        explanation = explainer.explain(images)  # one forward: logits, predicted classes, maps [B, H, W]
        _synchronise(device)
        sums.add("seconds" if warm else "first_seconds", time.perf_counter() - start)
        sums.add("timed" if warm else "first_timed", images.shape[0])
        warm = True
        sums.add("count", images.shape[0])
        maps, classes = explanation.maps, explanation.classes
        base = class_probability(explanation.logits, classes)  # Y: [B]

        order = ad_ic.pixel_order(maps)  # one stable sort serves every level
        masked = torch.cat([images * keep_top_fraction(maps, p, order).unsqueeze(1) for p in levels])  # [L·B, 3, H, W]
        probabilities = class_probability(_predict(explainer, masked, chunk), classes.repeat(len(levels)))
        for p, after in zip(levels, probabilities.view(len(levels), -1)):  # O: [B] per level
            sums.add(f"drop/{p}", confidence_drop(base, after))
            sums.add(f"increase/{p}", confidence_increase(base, after))

        for road_order in road.ORDERS if road_levels else ():
            for q in road_levels:
                removed = road.removal_mask(maps, q, road_order, order)
                imputed = road.noisy_linear_imputation(images, removed, seed=road_seed, workers=road_workers)
                logits = _predict(explainer, imputed, chunk)
                sums.add(f"road/{road_order}/{q}/correct", logits.argmax(dim=1) == classes)
                sums.add(f"road/{road_order}/{q}/probability", class_probability(logits, classes))

        if regions is not None:
            regions = regions.to(maps.device)
            sums.add("regions", regions.flatten(1).any(dim=1))
            sums.add("pointing", pointing_game(maps, regions, pointing_tolerance))
            sums.add("energy", energy_pointing_game(maps, regions))

    if sums is None:
        raise TameError("nothing to evaluate: the data yielded no batches")
    return _result(sums.reduced(), levels, road_levels, localisation)


def _result(
    totals: dict[str, float], levels: Sequence[float], road_levels: Sequence[float], localisation: bool
) -> EvaluationResult:
    count = totals["count"]
    if count == 0:
        raise TameError("nothing to evaluate: every sample was padding")
    result = EvaluationResult(
        num_samples=round(count),
        ad={level_name(p): 100.0 * totals[f"drop/{p}"] / count for p in levels},
        ic={level_name(p): 100.0 * totals[f"increase/{p}"] / count for p in levels},
        ms_per_image=1000.0
        * (totals["seconds"] / totals["timed"] if totals["timed"] else totals["first_seconds"] / totals["first_timed"]),
    )
    for order in road.ORDERS if road_levels else ():
        result.road[order] = {
            level_name(q): {
                "accuracy": 100.0 * totals[f"road/{order}/{q}/correct"] / count,
                "probability": totals[f"road/{order}/{q}/probability"] / count,
            }
            for q in road_levels
        }
    if localisation:
        with_regions = max(totals["regions"], 1.0)
        result.pointing_game = 100.0 * totals["pointing"] / with_regions
        result.energy_pointing_game = 100.0 * totals["energy"] / with_regions
    return result


# -- ground truth for localisation -------------------------------------------------------------------------------
def read_boxes(path: str | os.PathLike, resize: int, crop: int) -> dict[str, list[list[float]]]:
    """Ground-truth boxes per list path, in crop pixels (x1/y1 exclusive), from a JSON file.

    Two layouts: the synthetic set's ``boxes.json`` (``{"size": S, "images": {path: {"box": [x0, y0, x1, y1]}}}``,
    boxes in the S x S image, mapped here through the eval transform: shorter side to ``resize``, centre ``crop``),
    or ``{path: [[x0, y0, x1, y1], ...]}`` already in crop pixels.
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise TameError(f"boxes file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TameError(f"{path}: not a readable JSON file ({err})") from None
    if isinstance(raw, dict) and isinstance(raw.get("images"), dict):  # tame's synthetic set
        size = raw.get("size")
        if not isinstance(size, int) or not all(isinstance(e, dict) and "box" in e for e in raw["images"].values()):
            raise TameError(f"{path}: a synthetic-set boxes file needs 'size' and a 'box' for every image")
        return {name: [box_in_crop(entry["box"], (size, size), resize, crop)] for name, entry in raw["images"].items()}
    if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
        raise TameError(f"{path}: expected {{list path: [[x0, y0, x1, y1], ...]}} or a synthetic-set boxes.json")
    return raw


def box_in_crop(box: Sequence[float], image_hw: tuple[int, int], resize: int, crop: int) -> list[float]:
    """A box [x0, y0, x1, y1] of the original image in the coordinates of its eval crop."""
    from tame.data.images import crop_anchor, resized_size

    height, width = resized_size(*image_hw, resize)
    sy, sx = height / image_hw[0], width / image_hw[1]
    top, left = crop_anchor(height, crop, 0.5), crop_anchor(width, crop, 0.5)
    x0, y0, x1, y1 = box
    return [x0 * sx - left, y0 * sy - top, x1 * sx - left, y1 * sy - top]


def with_regions(loader, boxes: dict[str, list[list[float]]], size: tuple[int, int]) -> Iterator:
    """``(images, labels, regions bool [B, H, W])`` from an eval loader, regions drawn from ``boxes`` by list path."""
    plan = loader.plan()
    for k, (images, labels) in enumerate(loader):
        indices = plan.indices[plan.batch(k)].tolist()
        paths = [loader.entries[i].path for i in indices]
        missing = [p for p in paths if p not in boxes]
        if missing:
            raise TameError(f"no ground-truth boxes for {missing[0]} (and {len(missing) - 1} more in this batch)")
        regions = torch.stack([boxes_to_mask(boxes[p], size) for p in paths])
        yield images, labels, regions


# -- checkpoints -------------------------------------------------------------------------------------------------
_EPOCH = re.compile(r"^epoch_(\d+)\.pt$")


def checkpoints_to_evaluate(path: str | os.PathLike) -> list[tuple[str, Path]]:
    """(epoch label, file): one file, or every ``epoch_N.pt`` of a folder in epoch order."""
    path = Path(path)
    if path.is_dir():
        found = sorted((int(m.group(1)), p) for p in path.iterdir() if (m := _EPOCH.match(p.name)))
        if not found:
            raise TameError(f"checkpoint folder {path} holds no epoch_N.pt files (train writes them at epoch ends)")
        return [(str(epoch), p) for epoch, p in found]
    if not path.is_file():
        raise TameError(f"checkpoint not found: {path}")
    match = _EPOCH.match(path.name)
    return [(match.group(1) if match else path.stem, path)]


# -- output ------------------------------------------------------------------------------------------------------


def csv_text(rows: Sequence[tuple[str, EvaluationResult]], first: str = "epoch") -> str:
    """One line per (label, result); the reference's columns first, 4 decimals."""
    columns = list(rows[0][1].columns()) if rows else AD_IC_COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([first, *columns])
    for label, result in rows:
        values = result.columns()
        writer.writerow([label, *(f"{values[c]:.4f}" for c in columns)])
    return buffer.getvalue()


def summary_table(rows: Sequence[tuple[str, EvaluationResult]], first: str = "epoch") -> str:
    """A fixed-width table of the AD/IC columns (plus PG/EBPG and ms/img when present)."""
    columns = [c for c in rows[0][1].columns() if not c.startswith("ROAD")] if rows else AD_IC_COLUMNS
    width = max(len(c) for c in [first, *columns]) + 2
    lines = ["".join(c.rjust(width) for c in [first, *columns])]
    for label, result in rows:
        values = result.columns()
        lines.append(label.rjust(width) + "".join(f"{values[c]:.2f}".rjust(width) for c in columns))
    return "\n".join(lines)


# -- command line ------------------------------------------------------------------------------------------------
def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``tame eval`` and ``tame compare``."""
    parser.add_argument("--config", required=True, help="run config (model, layers, data sizes and paths)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.crop=224")
    parser.add_argument("--list", help="evaluation list (default: data.eval_list of the config)")
    parser.add_argument("--root", help="image root of the list (default: data.val_root of the config)")
    parser.add_argument("--out", help="output folder")
    parser.add_argument(
        "--batch-size", type=int, help="images per batch and process (default: data.batch_size / processes)"
    )
    parser.add_argument(
        "--chunk", type=int, help="images per classifier forward on masked copies (default: all of a batch)"
    )
    parser.add_argument("--max-samples", type=int, help="evaluate only the first N samples of the list")
    parser.add_argument(
        "--road",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also ROAD (MoRF/LeRF at 10..90%% removed, noisy linear imputation; CPU-heavy)",
    )
    parser.add_argument(
        "--road-workers", type=int, default=min(8, os.cpu_count() or 1), help="threads for the ROAD imputation solves"
    )
    parser.add_argument(
        "--boxes",
        help="ground-truth boxes: the synthetic set's boxes.json, or JSON {list path: "
        "[[x0, y0, x1, y1], ...]} in crop pixels; adds the (energy) pointing game",
    )
    parser.add_argument("--pointing-tolerance", type=float, default=0.0, help="pointing-game tolerance in pixels")
    parser.add_argument("--num-masks", type=int, default=4000, help="RISE: number of random masks")
    parser.add_argument("--layer", help="target layer of the CAM methods (default: the config's last layer)")
    add_device_option(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="TAME attention weights: a file, or a training folder (every epoch_N.pt)")
    parser.add_argument("--method", default="tame", help=f"explanation method: {', '.join(list_methods())}")
    add_data_arguments(parser)


@dataclass
class EvaluationData:
    """What the commands resolve before evaluating: config, process, model and the batches to iterate."""

    cfg: Config
    dist: Dist
    model: TameModel
    loader: Loader
    list_file: Path
    boxes: dict | None

    def batches(self) -> Iterable:
        if self.boxes is None:
            return self.loader
        return with_regions(self.loader, self.boxes, (self.cfg.data.crop, self.cfg.data.crop))


def prepare(args: argparse.Namespace) -> EvaluationData:
    """Config, process group, model and loader for ``tame eval`` / ``tame compare``."""
    from tame.data import build_loader

    cfg = load_config(args.config, args.overrides)
    for name in ("batch_size", "chunk", "max_samples", "num_masks", "road_workers"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise TameError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    list_file = expand_path(args.list, "--list") if args.list else expand_path(cfg.data.eval_list, "data.eval_list")
    root = expand_path(args.root, "--root") if args.root else expand_path(cfg.data.val_root, "data.val_root")
    boxes = read_boxes(args.boxes, cfg.data.resize, cfg.data.crop) if args.boxes else None
    dist = distributed.setup(args.device)
    model = TameModel.from_config(cfg.model, input_size=cfg.data.crop).to(dist.device).eval()
    batch_size = args.batch_size or max(1, cfg.data.batch_size // dist.world_size)
    loader = build_loader(
        cfg.data,
        list_file,
        root,
        train=False,
        device=dist.device,
        rank=dist.rank,
        world_size=dist.world_size,
        batch_size=batch_size,
        num_classes=model.num_classes,
        max_samples=args.max_samples,
    )
    return EvaluationData(cfg, dist, model, loader, list_file, boxes)


def evaluate_options(args: argparse.Namespace, data: EvaluationData) -> dict:
    """Keyword arguments of :func:`evaluate` from the command line."""
    return dict(
        road_levels=road.LEVELS if args.road else (),
        road_workers=args.road_workers,
        localisation=data.boxes is not None,
        pointing_tolerance=args.pointing_tolerance,
        chunk=args.chunk,
        total=len(data.loader),
        progress=data.dist.is_main and not args.no_progress,
    )


def method_options(name: str, args: argparse.Namespace) -> dict:
    """The command-line options a method takes (RISE's mask count, the CAM target layer)."""
    options = {"num_masks": args.num_masks} if name == "rise" else {}
    if args.layer and name not in ("tame", "rise"):
        options["layer"] = args.layer
    return options


def run(args: argparse.Namespace) -> int:
    method = resolve_method(args.method)
    if method == "tame" and not args.checkpoint:
        raise TameError("--checkpoint is required for --method tame (a file, or a training folder)")
    checkpoints = checkpoints_to_evaluate(args.checkpoint) if method == "tame" else [("", None)]
    data = prepare(args)
    try:
        if args.checkpoint and method != "tame" and data.dist.is_main:
            print(f"note: {method} does not use --checkpoint (it explains the classifier alone)")
        out = Path(args.out) if args.out else default_out(method, args.checkpoint, data.cfg)
        name = f"{method}_{data.list_file.stem}"
        rows = []
        for label, path in checkpoints:
            if path is not None:
                data.model.load_attention(path)
                data.model.eval()
            with create_explainer(method, data.model, **method_options(method, args)) as explainer:
                desc = f"{method} epoch {label}" if label else method
                rows.append((label, evaluate(explainer, data.batches(), desc=desc, **evaluate_options(args, data))))
            if data.dist.is_main:  # after every checkpoint: a later failure loses nothing already evaluated
                write_text_atomic(out / f"{name}.csv", csv_text(rows))
                report = {
                    "method": method,
                    "config": args.config,
                    "list": str(data.list_file),
                    "results": [
                        {"epoch": label, "checkpoint": str(p) if p else None, **asdict(result)}
                        for (label, result), (_, p) in zip(rows, checkpoints)
                    ],
                }
                write_text_atomic(out / f"{name}.json", json.dumps(report, indent=1))
        if data.dist.is_main:
            print(summary_table(rows))
            print(f"{rows[0][1].num_samples} samples; wrote {out / name}.csv and .json")
    finally:
        if data.dist.distributed:
            distributed.cleanup()
    return 0


def default_out(method: str, checkpoint: str | None, cfg: Config) -> Path:
    """``eval/`` next to the checkpoints for TAME, ``<output_dir>/eval`` for the baselines."""
    if method == "tame":
        path = Path(checkpoint)
        return (path if path.is_dir() else path.parent) / "eval"
    return expand_path(cfg.output_dir, "output_dir") / "eval"
