"""One table of the headline numbers of every benchmark report in a results folder, against the issue's targets.

    .venv/bin/python -m benchmarks.summary [benchmarks/results]     # after make bench, or benchmarks/gpu.sh

Reads the JSON reports the benchmarks wrote (those missing are skipped), prints the table and writes
``summary.json`` beside them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from benchmarks.harness import RESULTS, table
from tame.io import write_text_atomic

GIB = 2**30
HEADERS = ["benchmark", "what", "value", "unit", "target", "verdict", "device"]


class Rows(list):
    """The summary rows: [benchmark, what, value, unit, target, verdict, device]."""

    def add(self, bench: str, what: str, value: float, unit: str, device: str, target: float | None = None,
            at_most: bool = True) -> None:  # fmt: skip
        goal, verdict = "", ""
        if target is not None:
            goal = f"{'<=' if at_most else '>='} {target:g}"
            verdict = "ok" if (value <= target if at_most else value >= target) else "MISSED"
        self.append([bench, what, value, unit, goal, verdict, device])


def training(report: dict, rows: Rows) -> None:
    for r in report["results"]:
        what = f"{r['model']} TAME step / limit ({r['size']} px, batch {r['batch']}, {r.get('clock', 'wall')} time)"
        rows.add("training", what, r["tame_over_limit"], "x", report["device"], report["target_tame_over_limit"])
        rows.add("training", f"{r['model']} all-K step / TAME step", r["all_k_over_tame"], "x", report["device"])
        if "am_concat_over_selective" in r:
            what = f"{r['model']} AM alone: concat fuse (before #7) / selective"
            rows.add("training", what, r["am_concat_over_selective"], "x", report["device"])


def evaluation(report: dict, rows: Rows) -> None:
    device = report["device"]
    what = f"batched / reference ({report['model']} {report['size']} px, batch {report['batch_size']}"
    what += f", {report.get('clock', 'wall')} time)"
    rows.add("evaluation", what, report["speedup"], "x", device, report["target_speedup"], at_most=False)
    rows.add("evaluation", "batched", report["batched_images_per_s"], "images/s", device)
    if "batched_over_limit" in report:
        what = f"batched / its limit (4 bare forwards per image), {report['clock']} time"
        rows.add("evaluation", what, report["batched_over_limit"][report["clock"]], "x", device)
    rows.add("evaluation", "largest AD/IC difference to the reference", report["largest_difference"], "points", device)


def latency(report: dict, rows: Rows) -> None:
    for name, value in report["over_forward"].items():
        if name != "forward":
            target = report["target_tame_over_forward"] if name == "tame" else None
            what = f"{name} / bare forward ({report['model']} {report['size']} px, {report['how'][name]}"
            what += f", {report.get('clock', 'wall')} time)"
            rows.add("latency", what, value, "x", report["device"], target)


def loaders(report: dict, rows: Rows) -> None:
    for r in report["results"]:
        rows.add("loaders", f"{r['loader']} {r['mode']}", r["images_per_s"], "images/s", report["machine"]["gpu"] or "")


def memory(report: dict, rows: Rows) -> None:
    for r in report["results"]:
        if r["variant"] == "tame":
            what = f"{r['model']} TAME step peak ({report['measure']}, batch {report['batch_size']})"
            rows.add("memory", what, r["peak_bytes"] / GIB, "GiB", report["device"])


def throughput(report: dict, rows: Rows) -> None:
    targets = report.get("targets") or {}
    for r in report["results"]:
        what = f"{r['model']} compile {r['compile']}, {r['loader']}, batch {r['batch_size']}"
        rate = r["end_to_end"]["images_per_s"]
        rows.add("throughput", what, rate, "images/s", report["device"], targets.get(r["model"]), at_most=False)
        if "model_only" in r:
            what = f"{r['model']} compile {r['compile']}, one batch repeated (no loader)"
            rows.add("throughput", what, r["model_only"]["images_per_s"], "images/s", report["device"])


def timm_step(report: dict, rows: Rows) -> None:
    what = f"TAME step / timm ResNet-50 training step ({report['size']} px, batch {report['batch']}, {report['amp']}"
    rows.add("timm_step", f"{what}, {report['clock']} time)", report["tame_over_timm"], "x", report["device"])
    for name, rate in report["images_per_s"].items():
        rows.add("timm_step", f"{name} training step", rate, "images/s", report["device"])


SECTIONS: dict[str, Callable[[dict, Rows], None]] = {
    "training": training,
    "evaluation": evaluation,
    "latency": latency,
    "loaders": loaders,
    "memory": memory,
    "throughput": throughput,
    "timm_step": timm_step,
}


def summarise(folder: Path) -> Rows:
    """The headline rows of every report found in ``folder``."""
    rows = Rows()
    for name, section in SECTIONS.items():
        path = folder / f"{name}.json"
        if not path.is_file():
            continue
        try:
            section(json.loads(path.read_text()), rows)
        except (KeyError, TypeError, ValueError) as err:
            print(f"skipped {path}: not the format this summary reads ({type(err).__name__}: {err})")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", default=str(RESULTS))
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    rows = summarise(folder)
    if not rows:
        print(f"no benchmark reports in {folder}")
        return 1
    print(table(HEADERS, rows))
    write_text_atomic(folder / "summary.json", json.dumps([dict(zip(HEADERS, r)) for r in rows], indent=1) + "\n")
    print(f"wrote {folder / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
