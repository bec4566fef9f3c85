"""The class-sensitivity protocol of ``tame eval`` / ``tame compare --class-sensitivity`` (docs/METHOD.md).

Composites of T images of T different labels of the evaluation list (T = 2 side by side, T = 4 in a 2 x 2 grid,
each image with the evaluation transform at its full crop size), drawn with a fixed seed: for each composite T
distinct labels uniformly among the list's labels, then one image of each label uniformly. Every one of the T
labels (the list's, not the prediction) is explained on the composite, and each map is scored against its own
tile by :func:`tame.metrics.class_sensitivity.class_sensitivity`. The same seed gives every method the same
composites. The classifier sees an image T times the usual size: fine for a CNN; a model with a fixed input size
(a ViT) cannot take it, which is refused in one line (a TameError naming the composite's size).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from tame.config import Config
from tame.data.images import eval_image
from tame.data.lists import ListEntry
from tame.errors import TameError
from tame.evaluation.samples import class_names
from tame.methods import Explainer
from tame.metrics.class_sensitivity import Sensitivity, class_sensitivity, compose, tile_regions

SEED = 0  # of the composites' draw


@dataclass(frozen=True)
class ClassSensitivity:
    """One method's class sensitivity (percentages): ``selective``: composites where every class's map is on its
    own object; ``own_mass``: mean share of a class's map mass on its own tile; ``peak``: class maps peaking on
    their own tile. ``per_class``: the same per label (``label``, ``name``, ``slots``: maps of that label,
    ``on_own``, ``own_mass``, ``peak``)."""

    tiles: int
    composites: int
    selective: float
    own_mass: float
    peak: float
    per_class: list[dict]

    def columns(self) -> dict[str, float]:
        """The summary columns of the comparison table and chart."""
        return {"CS selective": self.selective, "CS mass": self.own_mass, "CS peak": self.peak}

    def record(self) -> dict:
        return asdict(self)


def plan_composites(labels: Sequence[int], tiles: int, count: int, seed: int = SEED) -> torch.Tensor:
    """[count, tiles] indices into ``labels``: each row ``tiles`` images of distinct labels (drawn as the module
    says)."""
    by_label: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(int(label), []).append(index)
    present = sorted(by_label)
    if len(present) < tiles:
        raise TameError(f"class sensitivity needs images of at least {tiles} labels; the list has {len(present)}")
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(count):
        chosen = torch.randperm(len(present), generator=generator)[:tiles].tolist()
        row = []
        for k in chosen:
            images = by_label[present[k]]
            row.append(images[torch.randint(len(images), (1,), generator=generator).item()])
        rows.append(row)
    return torch.tensor(rows, dtype=torch.int64).view(count, tiles)


@dataclass(frozen=True)
class CompositeSet:
    """The composites' sources: list entries, their image root and the evaluation transform."""

    entries: Sequence[ListEntry]
    root: Path
    resize: int
    crop: int
    interpolation: str = "bilinear"

    def images(self, indices: torch.Tensor) -> torch.Tensor:
        """indices [n, T] -> [n, T, 3, crop, crop] in [0, 1]."""
        loaded = [
            eval_image(self.root / self.entries[i].path, self.resize, self.crop, True, self.interpolation)
            for i in indices.flatten().tolist()
        ]
        return torch.stack(loaded).view(*indices.shape, 3, self.crop, self.crop)

    def labels(self, indices: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.entries[i].label for i in indices.flatten().tolist()]).view(indices.shape)


def composite_maps(explainer: Explainer, composites: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """composites [n, 3, H, W], labels [n, T] -> maps [n, T, H, W]: tile t's label explained on each composite."""
    maps = [explainer.explain(composites, labels[:, t]).maps for t in range(labels.shape[1])]  # T x [n, H, W]
    return torch.stack(maps, dim=1).float().cpu()


def measure(
    explainer: Explainer,
    source: CompositeSet,
    tiles: int,
    count: int | None = None,
    batch: int = 16,
    names: Sequence[str] = (),
) -> ClassSensitivity:
    """``explainer``'s class sensitivity on ``count`` composites (default: as many as the list's images / tiles)."""
    device = next(explainer.classifier.parameters()).device
    count = count or max(1, len(source.entries) // tiles)
    plan = plan_composites([entry.label for entry in source.entries], tiles, count)
    parts, labels = [], source.labels(plan)
    for start in range(0, count, batch):
        rows = plan[start : start + batch]
        composites = compose(source.images(rows)).to(device)  # [n, 3, H, W]
        try:
            maps = composite_maps(explainer, composites, labels[start : start + batch].to(device))
        except (AssertionError, RuntimeError, ValueError) as error:
            if start:  # the first batch went through: not the composite's size
                raise
            height, width = composites.shape[2:]
            raise TameError(
                f"class sensitivity: the classifier does not take a {height} x {width} composite of {tiles} images "
                f"({str(error).splitlines()[0] if str(error) else type(error).__name__}); a model with a fixed input "
                "size (a ViT) cannot be measured on composites"
            ) from error
        parts.append(class_sensitivity(maps, tile_regions(tiles, *maps.shape[2:])))
    score = Sensitivity(*(torch.cat(field) for field in zip(*parts)))
    return summarise(score, labels, tiles, names)


def measure_list(explainer: Explainer, cfg: Config, loader, tiles: int, count: int | None = None) -> ClassSensitivity:
    """:func:`measure` on an evaluation loader's list (its entries and root, the config's transform, its batch)."""
    data = cfg.data
    source = CompositeSet(loader.entries, loader.root, data.resize, data.crop, data.interpolation or "bilinear")
    batch = max(1, loader.batch_size // tiles)
    return measure(explainer, source, tiles, count, batch=batch, names=class_names(cfg))


def summarise(score: Sensitivity, labels: torch.Tensor, tiles: int, names: Sequence[str] = ()) -> ClassSensitivity:
    """Percentages over the composites and, per label (labels [N, T]), over that label's class maps."""
    per_class = []
    for label in sorted(set(labels.flatten().tolist())):
        slot = labels == label  # [N, T]
        per_class.append(
            {
                "label": label,
                "name": names[label] if 0 <= label < len(names) else str(label),
                "slots": int(slot.sum()),
                "on_own": _percent(score.on_own[slot]),
                "own_mass": _percent(score.own_mass[slot]),
                "peak": _percent(score.peak_own[slot]),
            }
        )
    return ClassSensitivity(
        tiles=tiles,
        composites=int(labels.shape[0]),
        selective=_percent(score.selective),
        own_mass=_percent(score.own_mass),
        peak=_percent(score.peak_own),
        per_class=per_class,
    )


def _percent(values: torch.Tensor) -> float:
    return round(100.0 * values.double().mean().item(), 4)
