"""``make demo`` over several seeds and thread counts: does the demo tell the same story on every run?

    python -m benchmarks.demo_runs --out /tmp/demo_runs                       # seeds 0 1 2 x threads 1 2
    python -m benchmarks.demo_runs --out /tmp/demo_runs --seeds 0 --threads 2 # one run

Each run is ``tame demo --seed S --threads T --out OUT/sS_tT`` in its own process (``OMP_NUM_THREADS=T``);
finished runs are reused (the demo's own stage records), so runs may also be started as separate processes with
the same ``--out`` and gathered by a last call. Prints, and writes to ``OUT/runs.md`` and ``OUT/runs.json``, one row
per run: classifier accuracy, TAME's pointing game per class on the report split (and its worst class on the
held-out tuning split), class sensitivity (the share of two-image composites where every class's map is on its own
object) of TAME and of Grad-CAM on its better layer, on the report split (and TAME's on the tuning split), AD(15%)
of TAME and of each CAM on its better layer, and the seconds its stages took as each stage recorded them when it
ran; then the range of every number over the runs, whether every class reached ``--bar`` % in every run, and
whether TAME's class sensitivity reached ``--selective-bar`` % (or Grad-CAM's) in every run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


def run_one(out: Path, seed: int, threads: int, config: str) -> None:
    """Run the demo once (reusing its finished stages)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "tame.cli", "demo", "--config", config, "--out", str(out)]
    command += ["--seed", str(seed), "--threads", str(threads)]
    with open(out.parent / f"{out.name}.log", "a") as log:  # a rerun that reuses stages keeps the first log
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)


def outputs(out: Path, stage: str) -> dict:
    return json.loads((out / stage / "stage.json").read_text())["outputs"]


def stage_seconds(out: Path) -> float:
    """The seconds every stage of a run took, as recorded when it ran."""
    return sum(outputs(out, record.parent.name).get("seconds", 0.0) for record in out.glob("*/stage.json"))


def summarise(out: Path, seed: int, threads: int) -> dict:
    """One run's numbers from its stage records."""
    results = outputs(out, "compare")["results"]
    check = outputs(out, "check")
    tame_ad = results["tame"]["AD(15%)"]
    cams = {cam: results[f"{cam} ({layer})"]["AD(15%)"] for cam, layer in check["better_layer"].items()}
    sensitivity, tune = outputs(out, "compare").get("sensitivity", {}), check.get("tune_sensitivity", {})
    gradcam = f"gradcam ({check['better_layer']['gradcam']})"
    return {
        "selective": {
            "tame": sensitivity.get("tame", {}).get("selective"),
            "gradcam": sensitivity.get(gradcam, {}).get("selective"),
            "tame_tune": tune.get("tame", {}).get("selective"),
        },
        "seed": seed,
        "threads": threads,
        "seconds": round(stage_seconds(out), 1),
        "accuracy": round(100 * outputs(out, "classifier")["val_accuracy"], 1),
        "pg": results["tame"]["PG"],
        "pg_per_class": check["pg_per_class"]["report"],
        "tune_pg_per_class": check["pg_per_class"]["tune"],
        "ad15": {"tame": tame_ad, **cams},
        "better_layer": check["better_layer"],
        "classes": outputs(out, "data")["classes"],
    }


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def table(rows: list[dict], bar: float, selective_bar: float = 90.0) -> list[str]:
    classes = rows[0]["classes"]
    cams = list(rows[0]["better_layer"])
    lines = [
        f"| seed | threads | accuracy | TAME PG | PG per class ({', '.join(classes)}) | worst (tune) "
        "| selective TAME (tune) | selective Grad-CAM "
        f"| AD(15%) TAME | {' | '.join(f'{c} (better layer)' for c in cams)} | stage s |",
        "|" + "---|" * (10 + len(cams)),
    ]
    for row in rows:
        report, tune = row["pg_per_class"], row["tune_pg_per_class"]
        worst = min(range(len(report)), key=report.__getitem__)
        worst_tune = min(range(len(tune)), key=tune.__getitem__)
        lines.append(
            f"| {row['seed']} | {row['threads']} | {row['accuracy']:.1f} | {row['pg']:.1f} | "
            f"{', '.join(f'{v:.0f}' for v in report)} (worst {classes[worst]}) | "
            f"{classes[worst_tune]} {tune[worst_tune]:.0f} | "
            f"{_percent(row['selective']['tame'])} ({_percent(row['selective']['tame_tune'])}) | "
            f"{_percent(row['selective']['gradcam'])} | {row['ad15']['tame']:.1f} | "
            + " | ".join(f"{row['ad15'][c]:.1f} ({row['better_layer'][c]})" for c in cams)
            + f" | {row['seconds']:.0f} |"
        )

    def span(values) -> str:
        return f"{min(values):.1f}-{max(values):.1f}"

    every = all(min(row["pg_per_class"]) >= bar and min(row["tune_pg_per_class"]) >= bar for row in rows)
    selective = [row["selective"] for row in rows]
    passed = all(s["tame"] is not None and s["tame"] >= min(selective_bar, s["gradcam"] or 100.0) for s in selective)
    beats = {c: sum(row["ad15"]["tame"] < row["ad15"][c] for row in rows) for c in cams}
    lines += [
        "",
        f"Ranges over {len(rows)} runs: accuracy {span([r['accuracy'] for r in rows])} %, TAME PG "
        f"{span([r['pg'] for r in rows])} %, worst class (report) {span([min(r['pg_per_class']) for r in rows])} %, "
        f"worst class (tune) {span([min(r['tune_pg_per_class']) for r in rows])} %, AD(15%) TAME "
        f"{span([r['ad15']['tame'] for r in rows])}, "
        + ", ".join(f"{c} {span([r['ad15'][c] for r in rows])}" for c in cams)
        + f", stages {span([r['seconds'] for r in rows])} s.",
        f"Every class >= {bar:.0f} % (report and tuning split) in every run: {'yes' if every else 'NO'}. "
        + "; ".join(f"TAME's AD(15%) beats {c} in {n} of {len(rows)} runs" for c, n in beats.items())
        + ".",
        f"TAME selective on >= {selective_bar:.0f} % of the report composites (or at least Grad-CAM's on its better "
        f"layer) in every run: {'yes' if passed else 'NO'}; and every class's PG >= {bar:.0f} % too: "
        f"{'yes' if passed and every else 'NO'}.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--bar", type=float, default=80.0, help="the per-class pointing-game bar (%%)")
    parser.add_argument("--selective-bar", type=float, default=90.0, help="TAME's class-sensitivity bar (%%)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        for threads in args.threads:
            out = args.out / f"s{seed}_t{threads}"
            run_one(out, seed, threads, args.config)
            rows.append(summarise(out, seed, threads))
            print(json.dumps(rows[-1]), flush=True)
    lines = table(rows, args.bar, args.selective_bar)
    print("\n".join(lines))
    (args.out / "runs.md").write_text("\n".join(lines) + "\n")
    (args.out / "runs.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
