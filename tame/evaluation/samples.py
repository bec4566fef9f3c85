"""Per-image and per-class results: the images and the classes a method fails on, which an average hides.

The metric loop records, for every image of this rank (padding dropped, in reading order), the list's label, the
explained class (the classifier's prediction), Y (its probability on the unmasked image), O at each level (its
probability on the image masked by the map's top pixels) and, with boxes, the pointing-game hit and the map's
energy share inside the boxes. :func:`gather_images` puts every rank's rows, in list order, on every rank;
:func:`per_class` groups them by the TRUE label of the list (what "the circle class" means to a user), with the
reference's formulas (``tame.metrics.ad_ic``) on the recorded float32 Y and O, so the rows average back to the
summary: AD = Σ_c n_c · AD_c / N.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from tame import distributed
from tame.data.class_names import class_names as load_names
from tame.distributed import Dist
from tame.errors import TameError
from tame.metrics.ad_ic import confidence_drop, confidence_increase, level_name


@dataclass(frozen=True)
class ImageRow:
    """One image's numbers: Y and O are the float32 probabilities the loop computed (exactly)."""

    index: int  # position in the list
    path: str
    label: int  # the list's (true) label
    predicted: int  # the explained class
    y: float
    o: tuple[float, ...]  # O at each level, in the levels' order
    hit: bool | None = None  # pointing game (None: no boxes, or no box pixel inside the crop)
    energy: float | None = None  # energy-based pointing game, 0..1


class SampleLog:
    """The per-image values of one rank, as :func:`tame.evaluation.evaluate` records them."""

    def __init__(self, levels: Sequence[float]) -> None:
        self.levels = tuple(levels)
        self._parts: list[dict[str, torch.Tensor]] = []

    def add(self, labels: torch.Tensor, classes: torch.Tensor, base: torch.Tensor, masked: torch.Tensor, **regions):
        """labels, classes: [B]; base (Y): [B]; masked (O): [L, B]; ``regions``: ``hit``, ``energy``, ``any`` [B]."""
        part = {"label": labels, "predicted": classes, "y": base, "o": masked.t(), **regions}
        self._parts.append({key: value.detach().cpu() for key, value in part.items()})

    def __len__(self) -> int:
        return sum(len(part["y"]) for part in self._parts)

    def correct(self) -> int:
        """How many recorded images were explained as their list label (the classifier's top-1 hits)."""
        return sum(int((part["predicted"] == part["label"]).sum()) for part in self._parts)

    def rows(self, indices: Sequence[int], paths: Sequence[str]) -> list[ImageRow]:
        """The recorded images as rows; ``indices`` / ``paths``: the list positions and paths, in reading order."""
        if len(indices) != len(self):
            raise TameError(f"internal error: {len(self)} images recorded for {len(indices)} list positions")
        rows, offset = [], 0
        for part in self._parts:
            for j in range(len(part["y"])):
                region = "any" in part and bool(part["any"][j])
                rows.append(
                    ImageRow(
                        index=int(indices[offset]),
                        path=paths[offset],
                        label=int(part["label"][j]),
                        predicted=int(part["predicted"][j]),
                        y=float(part["y"][j]),
                        o=tuple(float(v) for v in part["o"][j]),
                        hit=bool(part["hit"][j]) if region else None,
                        energy=float(part["energy"][j]) if region else None,
                    )
                )
                offset += 1
        return rows


def gather_images(dist: Dist, rows: list[ImageRow]) -> list[ImageRow]:
    """Every rank's rows on every rank, in list order (each list position once: padding was never recorded)."""
    gathered = [row for part in distributed.gather_objects(dist, rows) for row in part]
    return sorted(gathered, key=lambda row: row.index)


@dataclass
class ClassRow:
    """One class's numbers (percentages), over the images whose list label is ``label``."""

    label: int
    name: str
    images: int
    accuracy: float  # share of its images predicted as it
    ad: dict[str, float]
    ic: dict[str, float]
    pointing_game: float | None = None
    energy_pointing_game: float | None = None

    def columns(self) -> dict[str, float]:
        row = {"images": float(self.images), "accuracy": self.accuracy}
        for level in self.ad:
            row[f"AD({level})"] = self.ad[level]
            row[f"IC({level})"] = self.ic[level]
        if self.pointing_game is not None:
            row["PG"] = self.pointing_game
            row["EBPG"] = self.energy_pointing_game
        return row


def per_class(
    rows: Sequence[ImageRow], levels: Sequence[float], names: Sequence[str] = (), localisation: bool = False
) -> list[ClassRow]:
    """Rows grouped by the list's label, in label order; AD/IC by ``tame.metrics.ad_ic`` on the recorded Y, O;
    with ``localisation`` the pointing games over the class's images with a box pixel in the crop (as the summary)."""
    groups: dict[int, list[ImageRow]] = {}
    for row in rows:
        groups.setdefault(row.label, []).append(row)
    return [_class_row(label, groups[label], levels, names, localisation) for label in sorted(groups)]


def _class_row(
    label: int, group: list[ImageRow], levels: Sequence[float], names: Sequence[str], localisation: bool
) -> ClassRow:
    n = len(group)
    base = torch.tensor([row.y for row in group], dtype=torch.float32)  # Y: [n]
    masked = torch.tensor([row.o for row in group], dtype=torch.float32).t()  # O: [L, n]
    ad = {level_name(p): 100.0 * confidence_drop(base, o).double().sum().item() / n for p, o in zip(levels, masked)}
    ic = {level_name(p): 100.0 * confidence_increase(base, o).double().sum().item() / n for p, o in zip(levels, masked)}
    row = ClassRow(
        label=label,
        name=names[label] if 0 <= label < len(names) else str(label),
        images=n,
        accuracy=100.0 * sum(r.predicted == label for r in group) / n,
        ad=ad,
        ic=ic,
    )
    if localisation:
        located = [r for r in group if r.hit is not None]
        row.pointing_game = 100.0 * sum(r.hit for r in located) / max(len(located), 1)
        row.energy_pointing_game = 100.0 * sum(r.energy for r in located) / max(len(located), 1)
    return row


def class_names(cfg) -> list[str]:
    """The class names (index -> name) from the file ``cfg.model.class_names``, ImageNet's for 1000 classes without
    one, else none (the tables then name a class by its index)."""
    return load_names(cfg.model.class_names, cfg.model.num_classes)
