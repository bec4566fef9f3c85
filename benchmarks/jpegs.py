"""Synthetic ImageNet-sized JPEGs for loader and end-to-end training benchmarks (nothing downloaded).

    .venv/bin/python -m benchmarks.jpegs benchmarks/results/jpegs --images 2048 [--entries 20000]

Images of 500x375 or 375x500 pixels (ImageNet's most common sizes), a smooth random colour field plus noise,
saved at JPEG quality 90 (about ImageNet's 110 kB per image, so decoding costs about the same); written in
parallel and deterministic. ``train-<entries>.txt`` lists ``--entries`` lines cycling over the images (labels
0..999), so a benchmark can run more steps than there are distinct files; the page cache then holds them, as it
would hold a hot dataset.
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from tame.io import atomic_path, write_text_atomic

SIZES = ((375, 500), (500, 375))  # (height, width)


def render(path: Path, index: int, seed: int = 0) -> int:
    """Write image ``index`` to ``path``; returns its size in bytes."""
    rng = np.random.default_rng([seed, index])
    height, width = SIZES[index % 2]
    coarse = rng.uniform(0, 255, size=(height // 40 + 2, width // 40 + 2, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    noisy = smooth + rng.normal(0, 20, size=smooth.shape)
    with atomic_path(path) as tmp:
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(tmp, format="JPEG", quality=90)
    return path.stat().st_size


def write_jpegs(root: str | os.PathLike, images: int, entries: int | None = None, workers: int | None = None) -> Path:
    """``root/images/NNNNNN.jpg`` and the list ``root/train-<entries>.txt``; images already written are reused."""
    root = Path(root)
    entries = max(entries or images, images)
    done = root / "done.json"
    if not (done.is_file() and json.loads(done.read_text()).get("images") == images):
        (root / "images").mkdir(parents=True, exist_ok=True)
        paths = [root / "images" / f"{i:06d}.jpg" for i in range(images)]
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            sizes = list(pool.map(render, paths, range(images), chunksize=16))
        write_text_atomic(done, json.dumps({"images": images, "mean_bytes": sum(sizes) / len(sizes)}) + "\n")
    list_file = root / f"train-{entries}.txt"
    if not list_file.is_file():
        write_text_atomic(list_file, "".join(f"images/{i % images:06d}.jpg {i % 1000}\n" for i in range(entries)))
    return list_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="folder (image root of the list)")
    parser.add_argument("--images", type=int, default=2048, help="distinct JPEG files")
    parser.add_argument("--entries", type=int, help="lines of the list (default: --images)")
    parser.add_argument("--workers", type=int, help="processes (default: all CPUs)")
    args = parser.parse_args(argv)
    list_file = write_jpegs(args.out, args.images, args.entries, args.workers)
    meta = json.loads((Path(args.out) / "done.json").read_text())
    lines = len(list_file.read_text().splitlines())
    print(f"{list_file}: {lines} lines over {meta['images']} JPEGs, {meta['mean_bytes'] / 1e3:.0f} kB each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
