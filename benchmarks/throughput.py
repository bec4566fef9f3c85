"""TAME training images/s end to end: JPEG files -> loader -> ``tame.engine.train`` (the real loop), in one run.

    python -m benchmarks.throughput --device cuda                       # ResNet-50 + VGG-16, bf16, channels_last,
                                                                        # without and with torch.compile, DALI mixed
    .venv/bin/python -m benchmarks.throughput --device cpu --quick      # the same machinery, small, on a CPU

Each configuration runs :func:`tame.engine.train.train` itself (model build, optional ``torch.compile``, the loop
with its logging) for one epoch of ``--warmup + --steps + 1`` steps over synthetic ImageNet-sized JPEGs
(``benchmarks.jpegs``). A wrapper around the loader marks the time (after a device synchronisation) when batch
``warmup`` and batch ``warmup + steps`` are fetched: in between lie exactly ``steps`` steps and ``steps`` batch
fetches. ``model only`` runs the same loop on one batch already on the device, repeated, to show what the loader costs.
Peak GPU memory is ``torch.cuda.max_memory_allocated`` over the timed steps. Random weights (nothing downloaded).
Results go to ``benchmarks/results/throughput.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks.harness import (
    RESULTS,
    add_common_options,
    machine,
    resolve_device,
    set_threads,
    synchronise,
    table,
    verdict,
    write_report,
)
from benchmarks.jpegs import write_jpegs
from benchmarks.training import LAYERS
from tame.config import Config, DataConfig, LogConfig, ModelConfig, TrainConfig
from tame.data import build_loader
from tame.data.dali import dali_available
from tame.distributed import Dist
from tame.engine.train import train

TARGETS = {"resnet50": 2500.0, "vgg16": 900.0}  # images/s per H100, end to end with DALI (bf16, channels_last)


class TimedLoader:
    """A training loader that notes the time at two batch indices (and the peak GPU memory in between)."""

    def __init__(self, loader, start: int, stop: int, device: torch.device) -> None:
        self.loader, self.start, self.stop, self.device = loader, start, stop, device
        self.marks: list[float] = []
        self.peak_bytes: int | None = None

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.loader.set_epoch(epoch, skip_batches=skip_batches)

    def __iter__(self):
        for k, batch in enumerate(self.loader):
            if k in (self.start, self.stop):
                synchronise(self.device)
                self.marks.append(time.perf_counter())
                if self.device.type == "cuda":
                    if k == self.start:
                        torch.cuda.reset_peak_memory_stats(self.device)
                    else:
                        self.peak_bytes = torch.cuda.max_memory_allocated(self.device)
            yield batch


class RepeatedBatch:
    """One batch, already on the device, ``length`` times: the training loop without a loader."""

    def __init__(self, batch, length: int) -> None:
        self.batch, self.length = batch, length

    def __len__(self) -> int:
        return self.length

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        pass

    def __iter__(self):
        for _ in range(self.length):
            yield self.batch


def run_config(cfg: Config, loader, warmup: int, steps: int, device: torch.device) -> dict:
    timed = TimedLoader(loader, warmup, warmup + steps, device)
    output_dir = Path(tempfile.mkdtemp(prefix="tame-throughput-"))
    cfg.output_dir = str(output_dir)
    started = time.perf_counter()
    note = None
    try:
        train(cfg, loader=timed)
    except Exception as err:  # after the timed steps (a missing plotting library, say) the numbers still stand
        if len(timed.marks) < 2:
            raise
        note = f"after the timed steps: {type(err).__name__}: {err}"
        print(f"note: {note}", flush=True)
    finally:
        shutil.rmtree(output_dir, ignore_errors=True)
    first, last = timed.marks
    return {
        "note": note,
        "images_per_s": steps * cfg.data.batch_size / (last - first),
        "seconds": last - first,
        "warmup_s": first - started,  # model build, compile, warm-up steps
        "peak_gpu_bytes": timed.peak_bytes,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    add_common_options(
        parser,
        "throughput",
        "64 px crops, batch 4, 3 steps (a check, not a number)",
        device="cuda" if torch.cuda.is_available() else "cpu",
        threads_help="CPU threads for torch (0: torch's default)",
    )
    parser.add_argument("--batch-size", type=int, help="per step (default: 256 on a GPU, 8 on a CPU)")
    parser.add_argument("--steps", type=int, help="timed steps (default: 40 on a GPU, 4 on a CPU)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: 10 on a GPU, 1 on a CPU)")
    parser.add_argument("--compile", nargs="+", default=None, choices=("off", "on"), help="default: off on (GPU)")
    parser.add_argument("--amp", choices=("bf16", "fp16", "off"), help="default: bf16 on a GPU, off on a CPU")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--loader", choices=("auto", "dali", "torch"), default="auto", help="auto: DALI if it imports")
    parser.add_argument("--workers", type=int, default=min(16, os.cpu_count() or 1), help="DALI threads / processes")
    parser.add_argument("--images", type=int, default=2048, help="distinct synthetic JPEGs")
    parser.add_argument("--data", default=str(RESULTS / "jpegs"), help="where the JPEGs are written")
    parser.add_argument("--no-model-only", action="store_true", help="skip the runs without the loader")
    return parser.parse_args(argv)


@dataclass
class Plan:
    """The options with the device's defaults filled in."""

    batch: int
    steps: int
    warmup: int
    compile_modes: list[str]
    amp: str
    crop: int
    resize: int
    images: int
    backend: str
    loader_name: str


def plan(args: argparse.Namespace, gpu: bool) -> Plan:
    backend = args.loader
    if backend == "auto":
        backend = "dali" if dali_available(cpu_only=not gpu) else "torch"
    crop, resize = (64, 73) if args.quick else (224, 256)
    return Plan(
        batch=args.batch_size or (4 if args.quick else 256 if gpu else 8),
        steps=args.steps or (3 if args.quick else 40 if gpu else 4),
        warmup=args.warmup if args.warmup is not None else (10 if gpu else 1),
        compile_modes=args.compile or (["off", "on"] if gpu else ["off"]),
        amp=args.amp or ("bf16" if gpu else "off"),
        crop=crop,
        resize=resize,
        images=64 if args.quick and args.images == 2048 else args.images,
        backend=backend,
        loader_name=f"dali-{'mixed' if gpu else 'cpu'}" if backend == "dali" else "torch (PIL)",
    )


def config(
    args: argparse.Namespace, p: Plan, name: str, compile_mode: str, list_file: Path, device: torch.device
) -> Config:
    """One epoch of ``warmup + steps + 1`` steps of ``name`` on the JPEGs of ``list_file``."""
    return Config(
        model=ModelConfig(name=name, pretrained=False, layers=LAYERS[name]),
        data=DataConfig(
            root=str(list_file.parent),
            train_list=str(list_file),
            backend=p.backend,
            batch_size=p.batch,
            workers=args.workers,
            resize=p.resize,
            crop=p.crop,
            interpolation="bilinear",
            validate="none",
        ),
        train=TrainConfig(
            epochs=1,
            device=device.type,
            amp=p.amp,
            channels_last=not args.no_channels_last,
            compile=compile_mode == "on",
            resume="none",
            max_steps_per_epoch=p.warmup + p.steps + 1,
        ),
        log=LogConfig(wandb="disabled", tensorboard=False, images_per_epoch=0),
    )


def print_table(args: argparse.Namespace, p: Plan, device: torch.device, report: dict) -> None:
    gpu = device.type == "cuda"
    print(
        f"\nTAME training, {p.crop} px, batch {p.batch}, {device}, amp {p.amp}, "
        f"{'contiguous' if args.no_channels_last else 'channels_last'}, loader {p.loader_name}; "
        f"{p.steps} timed steps after {p.warmup}"
    )
    rows = []
    for r in report["results"]:
        rate = r["end_to_end"]["images_per_s"]
        target = TARGETS.get(r["model"]) if gpu and not args.quick else None
        peak = r["end_to_end"]["peak_gpu_bytes"]
        rows.append(
            [
                r["model"],
                r["compile"],
                rate,
                r["model_only"]["images_per_s"] if "model_only" in r else None,
                f">= {target:g}" if target else "",
                verdict(rate, target, at_most=False) if target else "",
                peak / 2**30 if peak is not None else None,
                r["end_to_end"]["warmup_s"],
            ]
        )
    headers = ["model", "compile", "images/s", "model only", "target", "", "peak GiB", "warm-up s"]
    print(table(headers, rows))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.cuda.set_device(device)
    else:
        set_threads(args.threads)
    p = plan(args, gpu)
    list_file = write_jpegs(args.data, p.images, entries=(p.warmup + p.steps + 1) * p.batch)
    report = {
        "machine": machine(device),
        "device": str(device),
        "batch_size": p.batch,
        "crop": p.crop,
        "steps": p.steps,
        "warmup": p.warmup,
        "amp": p.amp,
        "channels_last": not args.no_channels_last,
        "loader": p.loader_name,
        "workers": args.workers,
        "images": p.images,
        "targets": TARGETS if gpu and not args.quick else None,
        "results": [],
    }
    for compile_mode in p.compile_modes:  # every model uncompiled first: those numbers come early
        for name in args.models:
            cfg = config(args, p, name, compile_mode, list_file, device)
            loader = build_loader(
                cfg.data, list_file, list_file.parent, train=True, dist=Dist.local(device), seed=cfg.train.seed
            )
            result = {"model": name, "compile": compile_mode, "loader": p.loader_name, "batch_size": p.batch}
            result["end_to_end"] = run_config(cfg, loader, p.warmup, p.steps, device)
            if not args.no_model_only and compile_mode == "off":
                repeated = RepeatedBatch(next(iter(loader)), p.warmup + p.steps + 1)
                result["model_only"] = run_config(cfg, repeated, p.warmup, p.steps, device)
            report["results"].append(result)
            write_report("throughput", report, args.out)  # after each: a run cut short keeps what it measured
            rate = result["end_to_end"]["images_per_s"]
            print(f"{name} compile={compile_mode}: {rate:.1f} images/s end to end", flush=True)
    print_table(args, p, device, report)
    print(f"wrote {write_report('throughput', report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
