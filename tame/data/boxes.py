"""Ground-truth boxes for localisation: read from JSON, mapped into the eval crop, drawn as region masks per batch.

Boxes are ``[x0, y0, x1, y1]`` in pixel coordinates of the (cropped) input image, x1/y1 exclusive, as in slicing
``mask[y0:y1, x0:x1]``; :mod:`tame.metrics.localisation` scores maps against the region masks drawn here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch

from tame.data.images import crop_anchor, resized_size
from tame.errors import TameError

Boxes = dict[str, list[list[float]]]  # list path -> boxes [x0, y0, x1, y1] in crop pixels


def boxes_to_mask(boxes: Iterable[Sequence[float]], size: tuple[int, int]) -> torch.Tensor:
    """Boxes ``[x0, y0, x1, y1]`` (pixels, x1/y1 exclusive, clipped to the image) -> bool [H, W], their union."""
    height, width = size
    mask = torch.zeros(height, width, dtype=torch.bool)
    for box in boxes:
        if len(box) != 4:
            raise TameError(f"a box must be [x0, y0, x1, y1], got {list(box)!r}")
        x0, y0, x1, y1 = (round(float(v)) for v in box)
        if x1 <= x0 or y1 <= y0:
            raise TameError(f"box {list(box)!r} is empty (expected x0 < x1 and y0 < y1)")
        mask[max(y0, 0) : max(min(y1, height), 0), max(x0, 0) : max(min(x1, width), 0)] = True
    return mask


def read_boxes(path: str | os.PathLike, resize: int, crop: int) -> Boxes:
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
    height, width = resized_size(*image_hw, resize)
    sy, sx = height / image_hw[0], width / image_hw[1]
    top, left = crop_anchor(height, crop, 0.5), crop_anchor(width, crop, 0.5)
    x0, y0, x1, y1 = box
    return [x0 * sx - left, y0 * sy - top, x1 * sx - left, y1 * sy - top]


def with_regions(loader, boxes: Boxes, size: tuple[int, int]) -> Iterator:
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
