"""Images per second of the loader backends on the same synthetic JPEGs, in one run.

    .venv/bin/python -m benchmarks.loaders [--images 512] [--size 320] [--batch-size 64] [--workers N] [--epochs 5]
    .venv/bin/python -m benchmarks.loaders --list DIR/train-2048.txt --root DIR --loaders dali-mixed torch  # own JPEGs

Backends: the DALI CPU pipeline, the PIL fallback, and DALI ``mixed`` (GPU decoding) when CUDA is available; each
in train (random crop + flip) and eval (centre crop) mode at resize 256 / crop 224. The synthetic set is generated
once into ``benchmarks/results/`` (deterministic), or ``--list``/``--root`` name other images (``benchmarks.jpegs``
writes ImageNet-sized ones); the figures go to ``benchmarks/results/loaders.json`` (or ``--out``).
The first epoch of each loader is a warm-up (page cache, worker start-up) and is not timed.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from benchmarks.harness import RESULTS, add_common_options, machine, write_report
from tame.config import DataConfig
from tame.data import build_loader
from tame.data.dali import dali_available
from tame.data.synthetic import make_synthetic
from tame.distributed import Dist

LOADERS = ("dali-cpu", "torch", "dali-mixed")


def images_per_second(cfg: DataConfig, list_file: Path, root: Path, device: torch.device, train: bool, epochs: int):
    loader = build_loader(cfg, list_file, root, train=train, dist=Dist.local(device))
    for _ in loader:  # warm-up epoch
        pass
    count, start = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        loader.set_epoch(epoch)
        for images, _ in loader:
            count += images.shape[0]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=512, help="synthetic images (8 classes)")
    parser.add_argument("--size", type=int, default=320, help="synthetic image side in pixels")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DALI threads / PIL processes")
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per loader (after one warm-up)")
    parser.add_argument("--list", help="list file of other images (default: the synthetic set)")
    parser.add_argument("--root", help="image root of --list")
    parser.add_argument("--loaders", nargs="+", choices=LOADERS, default=list(LOADERS), help="those that can run")
    add_common_options(
        parser, "loaders", "64 images of 96 px, 1 epoch (a check, not a number)", device=None, threads=None
    )
    args = parser.parse_args()
    if args.quick:
        args.images, args.size, args.epochs = 64, 96, 1

    per_class = max(1, args.images // 8)
    if args.list:
        list_file, data = Path(args.list), Path(args.root or Path(args.list).parent)
    else:
        data = RESULTS / f"synthetic-{args.size}px-{per_class * 8}"
        list_file = data / "train.txt"
        if not list_file.is_file():
            make_synthetic(data, classes=8, train_per_class=per_class, val_per_class=1, size=args.size, progress=True)
    cfg = {"batch_size": args.batch_size, "workers": args.workers, "validate": "none"}
    cfg |= {"resize": 256, "crop": 224, "interpolation": "bilinear"}  # the ImageNet eval transform, as measured before
    runs = [("torch", "torch", torch.device("cpu"))]
    if dali_available(cpu_only=True):
        runs.insert(0, ("dali-cpu", "dali", torch.device("cpu")))
    if torch.cuda.is_available() and dali_available(cpu_only=False):
        runs.append(("dali-mixed", "dali", torch.device("cuda", 0)))
    runs = [run for run in runs if run[0] in args.loaders]
    results = []
    for name, backend, device in runs:
        for train in (True, False):
            rate = images_per_second(DataConfig(backend=backend, **cfg), list_file, data, device, train, args.epochs)
            mode = "train" if train else "eval"
            results.append({"loader": name, "mode": mode, "images_per_s": round(rate, 1)})
            print(f"{name:>10} {mode:>5}: {rate:8.1f} images/s")
    report = {
        "machine": machine(torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")),
        "workers": args.workers,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "data": {"list": str(list_file), "size": None if args.list else args.size, "resize": 256, "crop": 224},
        "results": results,
    }
    print(f"wrote {write_report('loaders', report, args.out)}")


if __name__ == "__main__":
    main()
