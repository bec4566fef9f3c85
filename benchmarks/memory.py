"""Peak memory of one training step: TAME against its limit and against the all-K-maps AM, at a given batch.

    .venv/bin/python -m benchmarks.memory                          # ResNet-50 and VGG-16, 224 px, batch 8, CPU
    .venv/bin/python -m benchmarks.memory --device cuda --batch-size 128 --amp bf16 --channels-last
    .venv/bin/python -m benchmarks.memory --quick                  # 64 px, batch 4

The step variants are those of ``benchmarks.training`` (``limit``: two forwards and a backward into the input of the
bare classifier; ``tame``: ``training_step`` + backward + optimiser step; ``all K``: the same with all K class maps).
CPU: each (model, variant) runs in a fresh process, so nothing one variant allocated stays cached for the next;
the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` just before the step) is read
after one step, and ``step`` is that peak minus the resident set just before the step (model and batch loaded).
CUDA: one model for the three variants; ``torch.cuda.max_memory_allocated`` over each variant's second step (the
first is a warm-up), minus the memory allocated before it. Results go to ``benchmarks/results/memory.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch

from benchmarks.harness import add_common_options, machine, resolve_device, set_threads, table, write_report
from benchmarks.training import LAYERS, VARIANTS, build, step_function

MIB = 2**20


def _proc_status(key: str) -> int:
    """A memory figure of this process from /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def measure(
    name: str, variants: Sequence[str], size: int, batch: int, device: torch.device, amp: str, channels_last: bool
) -> list[dict]:
    """Bytes before and at the peak of one step of each of ``variants``, on one model."""
    model, optimizer = build(name, size, device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.classifier.to(memory_format=memory_format)
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    images = images.contiguous(memory_format=memory_format)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if amp == "bf16" else nullcontext()
    results = []
    for variant in variants:
        step = step_function(variant, model, optimizer, images)
        if device.type == "cuda":
            with autocast:
                step()  # warm-up: cuDNN workspaces and the optimiser's momentum buffers
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
            with autocast:
                step()
            torch.cuda.synchronize(device)
            peak = torch.cuda.max_memory_allocated(device)
        else:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
            before = _proc_status("VmRSS")
            with autocast:
                step()
            peak = _proc_status("VmHWM")
        results.append({"model": name, "variant": variant, "before_bytes": before, "peak_bytes": peak})
    return results


def run_child(args: argparse.Namespace, name: str, variant: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.memory", "--child", name, variant, "--size", str(args.size)]
    command += ["--batch-size", str(args.batch_size), "--device", args.device, "--amp", args.amp]
    command += ["--threads", str(args.threads)] + (["--channels-last"] if args.channels_last else [])
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} {variant}: the measuring process failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    add_common_options(parser, "memory", "64 px, batch 4")
    parser.add_argument("--amp", default="off", choices=("off", "bf16"))
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.batch_size = 64, 4
    return args


def print_table(args: argparse.Namespace, device: torch.device, results: list[dict], what: str) -> None:
    """Peak and per-step memory of the three variants side by side, one row per model."""
    print(
        f"\nMemory of one training step, {args.size} px, batch {args.batch_size}, {device}, amp {args.amp}, "
        f"{'channels_last' if args.channels_last else 'contiguous'} ({what}; step = peak - before the step)"
    )
    rows = []
    for name in args.models:
        by = {r["variant"]: r for r in results if r["model"] == name}
        rows.append(
            [name]
            + [by[v]["peak_bytes"] / MIB for v in VARIANTS]
            + [by[v]["step_bytes"] / MIB for v in VARIANTS]
            + [
                by["tame"]["step_bytes"] / by["limit"]["step_bytes"],
                by["all K"]["step_bytes"] / by["tame"]["step_bytes"],
            ]
        )
    headers = ["model", "peak limit MiB", "peak TAME MiB", "peak all-K MiB", "step limit", "step TAME", "step all-K"]
    print(table([*headers, "TAME/limit", "all-K/TAME"], rows))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    device = resolve_device(args.device)

    if args.child:
        name, variant = args.child
        (result,) = measure(name, [variant], args.size, args.batch_size, device, args.amp, args.channels_last)
        print(json.dumps(result))
        return 0

    results = []
    for name in args.models:
        if device.type == "cuda":  # the CUDA figures are per step already: one process, one model for all variants
            found = measure(name, VARIANTS, args.size, args.batch_size, device, args.amp, args.channels_last)
            torch.cuda.empty_cache()
        else:
            found = [run_child(args, name, variant) for variant in VARIANTS]
        for result in found:
            result["step_bytes"] = result["peak_bytes"] - result["before_bytes"]
            results.append(result)
            print(f"{name:>9} {result['variant']:>6}: peak {result['peak_bytes'] / MIB:8.0f} MiB", flush=True)

    what = "peak RSS" if device.type == "cpu" else "max_memory_allocated"
    print_table(args, device, results, what)
    report = {
        "machine": machine(device),
        "device": str(device),
        "measure": what,
        "size": args.size,
        "batch_size": args.batch_size,
        "amp": args.amp,
        "channels_last": args.channels_last,
        "results": results,
    }
    print(f"wrote {write_report('memory', report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
