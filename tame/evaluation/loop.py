"""The metric loop: AD / IC at 100 %, 50 %, 15 % (docs/METHOD.md, "AD and IC"), ROAD and localisation over batches.

Batched: one forward gives logits and the map of the predicted class; the masked copies of the batch then go
through the classifier alone (never the AM again). Sharded: rank r evaluates list positions r, r+W, ...; padding
samples (label -1) are dropped and the per-metric sums are all-reduced, so every sample counts exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from tame import distributed
from tame.errors import TameError
from tame.evaluation.samples import SampleLog
from tame.methods import Explainer
from tame.metrics import ad_ic, road
from tame.metrics.ad_ic import class_probability, confidence_drop, confidence_increase, keep_top_fraction, level_name
from tame.metrics.localisation import energy_pointing_game, pointing_game

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


@dataclass(frozen=True)
class _Protocol:
    """What :func:`evaluate` measures on every batch."""

    levels: Sequence[float]
    road_levels: Sequence[float]
    road_seed: int
    road_workers: int
    localisation: bool
    pointing_tolerance: float
    chunk: int | None

    def sum_keys(self) -> list[str]:
        keys = ["count", "non-finite", "seconds", "timed", "first_seconds", "first_timed"] + [
            f"{name}/{p}" for p in self.levels for name in ("drop", "increase")
        ]
        keys += [
            f"road/{order}/{q}/{name}"
            for order in road.ORDERS
            for q in self.road_levels
            for name in ("correct", "probability")
        ]
        if self.localisation:
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
    name: str | None = None,
    samples: SampleLog | None = None,
) -> EvaluationResult:
    """AD/IC at ``levels`` (and ROAD at ``road_levels``, localisation) of ``explainer`` over ``batches``.

    ``batches`` yields ``(images [B, 3, H, W] in [0, 1], labels [B])`` or, for localisation,
    ``(images, labels, regions bool [B, H, W])``; samples labelled -1 (a sharded loader's padding) are dropped.
    The explained class is the classifier's prediction. ``chunk``: images per classifier forward on masked inputs
    (None: all masked copies of a batch in one forward). Under torch.distributed the sums are all-reduced.
    ``samples``: records this rank's per-image values (:mod:`tame.evaluation.samples`). A map with a NaN or an
    infinity is never averaged: any such image raises a TameError naming ``name`` (default ``desc``).
    """
    protocol = _Protocol(levels, road_levels, road_seed, road_workers, localisation, pointing_tolerance, chunk)
    sums: MetricSums | None = None
    warm = False  # the first explained batch pays one-off costs (kernel selection, lazy imports): timed apart
    for batch in tqdm(batches, total=total, desc=desc, unit="batch", disable=not progress, dynamic_ncols=True):
        if localisation and len(batch) < 3:
            raise TameError("localisation needs batches of (images, labels, regions)")
        images, labels = batch[0], batch[1]
        regions = batch[2] if localisation else None
        if sums is None:
            sums = MetricSums(protocol.sum_keys(), images.device)
        keep = labels >= 0
        if not bool(keep.all()):
            images, labels = images[keep], labels[keep]
            regions = regions[keep] if regions is not None else None
        if images.shape[0] == 0:
            continue
        _add_batch(sums, explainer, (images, labels, regions), protocol, warm, samples)
        warm = True
    if sums is None:
        raise TameError("nothing to evaluate: the data yielded no batches")
    totals = sums.reduced()
    if totals["non-finite"]:
        raise TameError(
            f"{name or desc}: {round(totals['non-finite'])} of {round(totals['count'])} images got an explanation map "
            "with NaN or infinite values; no result is reported (check the weights: a diverged or damaged checkpoint?)"
        )
    return _result(totals, levels, road_levels, localisation)


def _add_batch(
    sums: MetricSums,
    explainer: Explainer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None],
    protocol: _Protocol,
    warm: bool,
    samples: SampleLog | None,
) -> None:
    """Add one batch's samples (images, labels, regions or None; padding already dropped) to ``sums``."""
    images, labels, regions = batch
    device = images.device
    _synchronise(device)
    start = time.perf_counter()
    explanation = explainer.explain(images)  # one forward: logits, predicted classes, maps [B, H, W]
    _synchronise(device)
    sums.add("seconds" if warm else "first_seconds", time.perf_counter() - start)
    sums.add("timed" if warm else "first_timed", images.shape[0])
    sums.add("count", images.shape[0])
    maps, classes = explanation.maps, explanation.classes
    sums.add("non-finite", ~torch.isfinite(maps).flatten(1).all(dim=1))
    base = class_probability(explanation.logits, classes)  # Y: [B]

    levels, chunk = protocol.levels, protocol.chunk
    order = ad_ic.pixel_order(maps)  # one stable sort serves every level
    masked = torch.cat([images * keep_top_fraction(maps, p, order).unsqueeze(1) for p in levels])  # [L·B, 3, H, W]
    probabilities = class_probability(_predict(explainer, masked, chunk), classes.repeat(len(levels)))
    probabilities = probabilities.view(len(levels), -1)  # O: [L, B]
    for p, after in zip(levels, probabilities):
        sums.add(f"drop/{p}", confidence_drop(base, after))
        sums.add(f"increase/{p}", confidence_increase(base, after))

    for road_order in road.ORDERS if protocol.road_levels else ():
        for q in protocol.road_levels:
            removed = road.removal_mask(maps, q, road_order, order)
            imputed = road.noisy_linear_imputation(
                images, removed, seed=protocol.road_seed, workers=protocol.road_workers
            )
            logits = _predict(explainer, imputed, chunk)
            sums.add(f"road/{road_order}/{q}/correct", logits.argmax(dim=1) == classes)
            sums.add(f"road/{road_order}/{q}/probability", class_probability(logits, classes))

    located = _add_localisation(sums, maps, regions, protocol) if regions is not None else {}
    if samples is not None:
        samples.add(labels, classes, base, probabilities, **located)


def _add_localisation(
    sums: MetricSums, maps: torch.Tensor, regions: torch.Tensor, protocol: _Protocol
) -> dict[str, torch.Tensor]:
    """Add the pointing games of one batch; returns the per-image values (``any``: a box pixel in the crop)."""
    regions = regions.to(maps.device)
    located = {
        "any": regions.flatten(1).any(dim=1),
        "hit": pointing_game(maps, regions, protocol.pointing_tolerance),
        "energy": energy_pointing_game(maps, regions),
    }
    sums.add("regions", located["any"])
    sums.add("pointing", located["hit"])
    sums.add("energy", located["energy"])
    return located


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
