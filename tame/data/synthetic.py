"""Synthetic benchmark data: one shape per image on a cluttered background, with ground-truth boxes and masks.

The class is the object's *shape* (circle, square, triangle, cross, ring, star, diamond, crescent); its colour,
size, position and a small rotation are random and independent of the class. The background is a smooth random
colour field with distractors that are not class shapes: thin lines and small irregular specks, all behind the
object, so the mask is exactly the object. A small CNN learns the classes at 64 px in minutes on a CPU, and an
explanation of its decision should point at the object, which the boxes and masks let us measure.

Layout written by :func:`make_synthetic` (``OUT`` is the image root of both lists)::

    OUT/images/{train,val}/00000.jpg     JPEG images, size x size
    OUT/masks/{train,val}/00000.png      object masks (0 / 255)
    OUT/train.txt, OUT/val.txt           list files: images/train/00000.jpg LABEL
    OUT/classes.txt                      LABEL NAME per line
    OUT/boxes.json                       {"size", "seed", "classes", "images": {list path: {"label", "box", "mask"}}}

Boxes are ``[x0, y0, x1, y1]`` in pixels, x1/y1 exclusive, the tight box of the mask. Everything is a function of
``(seed, split, index)``: the same arguments give byte-identical files.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from tame.data.lists import write_list
from tame.errors import TameError
from tame.io import atomic_path, write_text_atomic

SHAPES = ("circle", "square", "triangle", "cross", "ring", "star", "diamond", "crescent")
SPLITS = {"train": 0, "val": 1}  # split -> seed component


@dataclass(frozen=True)
class SyntheticSet:
    root: Path  # image root of both lists
    train_list: Path
    val_list: Path
    boxes: Path
    classes: tuple[str, ...]


def _regular_polygon(cx: float, cy: float, radius: float, corners: int, angle: float) -> list[tuple[float, float]]:
    return [
        (
            cx + radius * math.cos(angle + 2 * math.pi * i / corners),
            cy + radius * math.sin(angle + 2 * math.pi * i / corners),
        )
        for i in range(corners)
    ]


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, angle: float, rng) -> None:
    """Draw ``shape`` (fill 255, holes 0) of radius ``r`` centred at (cx, cy), rotated by ``angle`` radians."""
    if shape in ("circle", "ring", "crescent"):
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        if shape == "ring":
            hole = 0.55 * r
            draw.ellipse((cx - hole, cy - hole, cx + hole, cy + hole), fill=0)
        elif shape == "crescent":
            direction = rng.uniform(0, 2 * math.pi)
            ox, oy = cx + 0.5 * r * math.cos(direction), cy + 0.5 * r * math.sin(direction)
            draw.ellipse((ox - r, oy - r, ox + r, oy + r), fill=0)
    elif shape == "square":
        draw.polygon(_regular_polygon(cx, cy, 1.2 * r, 4, angle + math.pi / 4), fill=255)
    elif shape == "diamond":
        draw.polygon(_regular_polygon(cx, cy, 1.1 * r, 4, angle), fill=255)
    elif shape == "triangle":
        draw.polygon(_regular_polygon(cx, cy, 1.15 * r, 3, angle - math.pi / 2), fill=255)
    elif shape == "star":
        outer = _regular_polygon(cx, cy, 1.15 * r, 5, angle - math.pi / 2)
        inner = _regular_polygon(cx, cy, 0.45 * r, 5, angle - math.pi / 2 + math.pi / 5)
        draw.polygon([point for pair in zip(outer, inner) for point in pair], fill=255)
    elif shape == "cross":
        width = 0.32 * r
        for arm in (0.0, math.pi / 2):
            a = angle + arm
            dx, dy = math.cos(a), math.sin(a)
            px, py = -dy * width, dx * width
            draw.polygon(
                [
                    (cx - r * dx + px, cy - r * dy + py),
                    (cx + r * dx + px, cy + r * dy + py),
                    (cx + r * dx - px, cy + r * dy - py),
                    (cx - r * dx - px, cy - r * dy - py),
                ],
                fill=255,
            )
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _colour(rng, saturation: tuple[float, float], value: tuple[float, float]) -> np.ndarray:
    """A random RGB colour [3] in [0, 255] from HSV ranges."""
    h, s, v = rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value)
    k = (np.array([5.0, 3.0, 1.0]) + h * 6) % 6
    return 255 * (v - v * s * np.clip(np.minimum(k, 4 - k), 0, 1))


def render_sample(rng: np.random.Generator, label: int, size: int) -> tuple[Image.Image, np.ndarray, list[int]]:
    """One image of class ``SHAPES[label]``: (RGB image size x size, mask [size, size] bool, box [x0, y0, x1, y1])."""
    scale = min(4, max(2, 256 // size))  # supersampling for smooth edges
    canvas = size * scale
    # background: a smooth random colour field plus a gradient
    grid = rng.integers(0, 256, size=(rng.integers(3, 7), rng.integers(3, 7), 3), dtype=np.uint8)
    field = np.asarray(Image.fromarray(grid).resize((canvas, canvas), Image.Resampling.BICUBIC), dtype=np.float32)
    gradient = np.linspace(-1, 1, canvas, dtype=np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = math.cos(direction) * gradient[None, :] + math.sin(direction) * gradient[:, None]
    tint = _colour(rng, (0.0, 0.4), (0.3, 0.9)).astype(np.float32)
    background = 0.6 * field + 0.4 * tint + 25 * ramp[..., None]
    image = Image.fromarray(background.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 9)):  # thin lines
        x0, y0, x1, y1 = rng.uniform(0, canvas, size=4)
        draw.line((x0, y0, x1, y1), fill=tuple(int(c) for c in _colour(rng, (0, 1), (0.2, 1))), width=scale)
    for _ in range(rng.integers(2, 7)):  # small irregular specks
        cx, cy = rng.uniform(0, canvas, size=2)
        radius = rng.uniform(0.02, 0.05) * canvas
        corners = rng.integers(5, 9)
        points = [
            (
                cx + radius * rng.uniform(0.4, 1) * math.cos(2 * math.pi * i / corners),
                cy + radius * rng.uniform(0.4, 1) * math.sin(2 * math.pi * i / corners),
            )
            for i in range(corners)
        ]
        draw.polygon(points, fill=tuple(int(c) for c in _colour(rng, (0, 1), (0.2, 1))))
    # the object
    r = rng.uniform(0.16, 0.3) * canvas
    margin = 1.2 * r
    cx, cy = rng.uniform(margin, canvas - margin, size=2)
    mask_image = Image.new("L", (canvas, canvas), 0)
    _draw_shape(ImageDraw.Draw(mask_image), SHAPES[label], cx, cy, r, rng.uniform(-0.26, 0.26), rng)
    alpha = np.asarray(mask_image, dtype=np.float32)[..., None] / 255
    pixels = np.asarray(image, dtype=np.float32)
    behind = (pixels * alpha).sum(axis=(0, 1)) / alpha.sum()  # mean background colour under the object
    for _ in range(20):  # a colour that stands out from what is behind it
        colour = _colour(rng, (0.5, 1.0), (0.6, 1.0))
        if np.abs(colour - behind).sum() > 150:
            break
    pixels = pixels * (1 - alpha) + colour.astype(np.float32) * alpha
    out = np.asarray(Image.fromarray(pixels.astype(np.uint8)).resize((size, size), Image.Resampling.BOX), np.float32)
    out += rng.normal(0, 4, size=out.shape).astype(np.float32)  # sensor-like noise
    out = Image.fromarray(out.clip(0, 255).round().astype(np.uint8))
    mask = np.asarray(mask_image.resize((size, size), Image.Resampling.BOX)) >= 128
    ys, xs = np.nonzero(mask)
    box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
    return out, mask, box


OUTPUTS = ("train.txt", "val.txt", "classes.txt", "boxes.json")


def check_not_users_files(root: Path) -> None:
    """Refuse to write into a folder that holds a list, class file or ``boxes.json`` that an earlier synthetic set
    did not write (its ``boxes.json`` says so): a user's own ``train.txt`` is never overwritten. A folder of an
    earlier (or interrupted: the ``boxes.json`` without images is written first) synthetic set is rewritten."""
    existing = [name for name in OUTPUTS if os.path.lexists(root / name)]
    if not existing or _is_synthetic_set(root / "boxes.json"):
        return
    raise TameError(
        f"refusing to write the synthetic set into {root}: it already holds {', '.join(existing)}, not from an "
        "earlier synthetic set (give a new or empty folder)"
    )


def _is_synthetic_set(meta: Path) -> bool:
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and {"size", "seed", "classes", "images"} <= data.keys()


def make_synthetic(
    out: str | os.PathLike,
    *,
    classes: int = 6,
    train_per_class: int = 100,
    val_per_class: int = 20,
    size: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> SyntheticSet:
    """Write the synthetic set under ``out`` (see the module docstring); returns where everything is."""
    if not 2 <= classes <= len(SHAPES):
        raise TameError(f"--classes must be between 2 and {len(SHAPES)} (the shapes: {', '.join(SHAPES)})")
    if size < 32:
        raise TameError(f"--size must be at least 32 pixels, got {size}")
    if train_per_class < 1 or val_per_class < 1 or seed < 0:
        raise TameError("--train-per-class and --val-per-class must be positive and --seed non-negative")
    root = Path(out)
    check_not_users_files(root)
    names = SHAPES[:classes]
    boxes: dict[str, dict] = {}
    counts = {"train": train_per_class * classes, "val": val_per_class * classes}
    meta = {"size": size, "seed": seed, "classes": list(names), "images": boxes}
    write_text_atomic(root / "boxes.json", json.dumps(meta))  # marks the folder as ours before anything else
    bar = tqdm(total=sum(counts.values()), desc="synthesise", unit="img", disable=not progress)
    for split, count in counts.items():
        entries = []
        for index in range(count):
            label = index % classes  # every prefix of a list is balanced
            image, mask, box = render_sample(np.random.default_rng([seed, SPLITS[split], index]), label, size)
            path, mask_path = f"images/{split}/{index:05d}.jpg", f"masks/{split}/{index:05d}.png"
            with atomic_path(root / path) as tmp:
                image.save(tmp, format="JPEG", quality=90)
            with atomic_path(root / mask_path) as tmp:
                Image.fromarray(mask.astype(np.uint8) * 255).save(tmp, format="PNG")
            boxes[path] = {"label": label, "box": box, "mask": mask_path}
            entries.append((path, label))
            bar.update()
        write_list(root / f"{split}.txt", entries)
    bar.close()
    write_text_atomic(root / "classes.txt", "".join(f"{label} {name}\n" for label, name in enumerate(names)))
    write_text_atomic(root / "boxes.json", json.dumps(meta, indent=1))
    return SyntheticSet(root, root / "train.txt", root / "val.txt", root / "boxes.json", names)
