"""Images per second of the loader backends on the same synthetic JPEGs, in one run.

    .venv/bin/python -m benchmarks.loaders [--images 512] [--size 320] [--batch-size 64] [--workers N] [--epochs 5]

Backends: the DALI CPU pipeline, the PIL fallback, and DALI ``mixed`` (GPU decoding) when CUDA is available; each
in train (random crop + flip) and eval (centre crop) mode at resize 256 / crop 224. The synthetic set is generated
once into ``benchmarks/results/`` (deterministic); the figures go to ``benchmarks/results/loaders.json``.
The first epoch of each loader is a warm-up (page cache, worker start-up) and is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from tame.config import DataConfig
from tame.data import build_loader
from tame.data.dali import dali_available
from tame.data.synthetic import make_synthetic

RESULTS = Path(__file__).resolve().parent / "results"


def images_per_second(cfg: DataConfig, list_file: Path, root: Path, device: torch.device, train: bool, epochs: int):
    loader = build_loader(cfg, list_file, root, train=train, device=device)
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
    args = parser.parse_args()

    per_class = max(1, args.images // 8)
    data = RESULTS / f"synthetic-{args.size}px-{per_class * 8}"
    if not (data / "train.txt").is_file():
        make_synthetic(data, classes=8, train_per_class=per_class, val_per_class=1, size=args.size, progress=True)
    cfg = {"batch_size": args.batch_size, "workers": args.workers, "validate": "none"}
    runs = [("torch", "torch", torch.device("cpu"))]
    if dali_available(cpu_only=True):
        runs.insert(0, ("dali-cpu", "dali", torch.device("cpu")))
    if torch.cuda.is_available() and dali_available(cpu_only=False):
        runs.append(("dali-mixed", "dali", torch.device("cuda", 0)))
    results = []
    for name, backend, device in runs:
        for train in (True, False):
            rate = images_per_second(
                DataConfig(backend=backend, **cfg), data / "train.txt", data, device, train, args.epochs
            )
            mode = "train" if train else "eval"
            results.append({"loader": name, "mode": mode, "images_per_s": round(rate, 1)})
            print(f"{name:>10} {mode:>5}: {rate:8.1f} images/s")
    report = {
        "command": "python -m benchmarks.loaders "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "data": {"images": per_class * 8, "size": args.size, "resize": 256, "crop": 224},
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "loaders.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS / 'loaders.json'}")


if __name__ == "__main__":
    main()
