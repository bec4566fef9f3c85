"""What every benchmark shares: side-by-side timing, the machine description, tables and the JSON report.

Timings on a shared machine drift with the load of other processes. :func:`compare` therefore runs the
alternatives interleaved, round after round (the order rotating), and :func:`ratio` takes the median of the
per-round ratios: a slow phase of the machine slows both sides of a round alike. Each call's process CPU time is
recorded too; on a CPU the verdicts use it (:func:`judged_clock`), as wall time there mostly measures the others.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tame.io import write_text_atomic

RESULTS = Path(os.environ.get("TAME_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")


@dataclass
class Timing:
    """Seconds per call of one alternative, one entry per round."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU time (user + system), all threads

    @property
    def median(self) -> float:
        """Median wall seconds."""
        return statistics.median(self.wall)

    def median_of(self, clock: str) -> float:
        """Median seconds of ``clock`` (``wall`` or ``cpu``)."""
        return statistics.median(getattr(self, clock))


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compare(
    functions: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, device: torch.device | None = None
) -> dict[str, Timing]:
    """Time each function ``repeats`` times, interleaved (round r starts at function r mod n), after ``warmup``."""
    device = device or torch.device("cpu")
    names = list(functions)
    for _ in range(warmup):
        for name in names:
            functions[name]()
    timings = {name: Timing() for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            synchronise(device)
            wall, cpu = time.perf_counter(), time.process_time()
            functions[name]()
            synchronise(device)
            timings[name].wall.append(time.perf_counter() - wall)
            timings[name].cpu.append(time.process_time() - cpu)
    return timings


def ratio(timings: dict[str, Timing], numerator: str, denominator: str, clock: str = "wall") -> float:
    """Median over rounds of (numerator's time / denominator's time) in the same round."""
    top, bottom = getattr(timings[numerator], clock), getattr(timings[denominator], clock)
    return statistics.median(a / b for a, b in zip(top, bottom))


def resolve_device(name: str) -> torch.device:
    """``cuda`` -> ``cuda:0`` (``torch.cuda.set_device`` needs an index); anything else as given."""
    device = torch.device(name)
    return torch.device("cuda", 0) if device.type == "cuda" and device.index is None else device


def judged_clock(device: torch.device) -> str:
    """The clock a verdict uses: process CPU time on a CPU (the work done, which other processes on a shared machine
    do not inflate; OpenMP waits passively, see ``benchmarks/__init__.py``), wall time on a GPU."""
    return "cpu" if device.type == "cpu" else "wall"


def add_common_options(
    parser: argparse.ArgumentParser,
    name: str,
    quick: str,
    *,
    device: str | None = "cpu",
    threads: int | None = 2,
    device_help: str = "torch's device: cpu, cuda or cuda:N",
    threads_help: str = "CPU threads (0: torch's default)",
) -> None:
    """The options every benchmark shares, spelled once: ``--device`` (default ``device``), ``--threads`` (default
    ``threads``; see :func:`set_threads`), ``--quick`` (``quick``: what it shrinks; a check, not a number) and
    ``--out`` (the JSON report; default ``benchmarks/results/NAME.json``, see :func:`write_report`). ``device`` or
    ``threads`` None: the benchmark has no such option."""
    if device is not None:
        parser.add_argument("--device", default=device, help=f"{device_help} (default: {device})")
    if threads is not None:
        parser.add_argument("--threads", type=int, default=threads, help=f"{threads_help} (default: {threads})")
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", help=f"JSON file (default benchmarks/results/{name}.json)")


def set_threads(threads: int | None) -> None:
    """Intra-op threads for the CPU (default: torch's choice)."""
    if threads:
        torch.set_num_threads(threads)


def machine(device: torch.device | None = None) -> dict:
    """What the numbers were measured on."""
    cpu_model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # other work on the machine while this ran
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": None,
    }
    try:
        import timm

        info["timm"] = timm.__version__
    except ImportError:
        pass
    try:
        import nvidia.dali

        info["dali"] = nvidia.dali.__version__
    except ImportError:
        info["dali"] = None
    if torch.cuda.is_available() and (device is None or device.type == "cuda"):
        info["gpu"] = torch.cuda.get_device_name(device or 0)
        info["cuda"] = torch.version.cuda
    return info


def command() -> str:
    """The command line that produced this report."""
    module = Path(sys.argv[0]).stem
    return " ".join([f"python -m benchmarks.{module}", *sys.argv[1:]])


def write_report(name: str, report: dict, out: str | os.PathLike | None = None) -> Path:
    """``report`` plus command, date and machine as ``<results>/<name>.json`` (or ``out``); returns the path."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    full = {
        "benchmark": name,
        "command": command(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **report,
    }
    full.setdefault("machine", machine())
    write_text_atomic(path, json.dumps(full, indent=1) + "\n")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A fixed-width text table: numbers right-aligned, text left-aligned."""
    cells = [[str(h) for h in headers]] + [[_cell(value) for value in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in rows) for i in range(len(headers))]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for k, row in enumerate(cells):
        lines.append("  ".join(c.rjust(w) if right else c.ljust(w) for c, w, right in zip(row, widths, numeric)))
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return "" if value is None else str(value)


def verdict(value: float, target: float, at_most: bool = True) -> str:
    """``ok`` or ``MISSED`` for a measured ratio against its target."""
    met = value <= target if at_most else value >= target
    return "ok" if met else "MISSED"
