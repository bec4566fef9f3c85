"""Training runs at a glance (``tame runs``): what each output folder holds, from its files alone (no torch loads).

A run's folder has ``config.yaml`` (the resolved config, written at every start), ``train_record.json`` (epochs,
validations, the best epoch, and who runs it: ``run.state``, ``pid``, ``host``) and its checkpoints. Its status:

- ``finished``: every epoch of ``train.epochs`` recorded;
- ``running``: the record says running and its process is alive (checked on the same host; another host's is
  taken at its word, marked ``?``);
- ``stopped at step S``: stopped by an error or an interrupt, or killed (the record still says running but its
  process is gone); ``S`` is the newest checkpoint's step, where ``tame train`` on the same config continues.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from tame.checkpoint.naming import BEST_FILE, epoch_checkpoints, step_checkpoints
from tame.config.safe_yaml import load_yaml
from tame.engine.run_log import RECORD_FILE
from tame.errors import TameError

CONFIG_FILE = "config.yaml"
METRICS = ("AD(15%)", "IC(15%)")  # the best epoch's numbers the table shows


@dataclass
class RunSummary:
    """One row of the table."""

    folder: Path
    model: str
    layers: list[str]
    version: str
    max_lr: float
    epochs_done: int
    epochs: int
    best: dict | None  # the record's entry of the best validated epoch (``epoch``, ``step``, the metrics)
    status: str


def is_run(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() or (folder / RECORD_FILE).is_file()


def find_runs(paths: list[str | os.PathLike]) -> list[Path]:
    """Run folders: each path that is one, or else the run folders directly inside it (in name order)."""
    found = []
    for path in map(Path, paths):
        if is_run(path):
            found.append(path)
            continue
        inside = sorted(p for p in path.iterdir() if p.is_dir() and is_run(p)) if path.is_dir() else []
        if not inside:
            raise TameError(f"{path}: not a training run (no {CONFIG_FILE} or {RECORD_FILE}) and holds none")
        found += inside
    return found


def _read(path: Path, parse) -> dict:
    if not path.is_file():
        return {}
    try:
        value = parse(path.read_bytes())
    except RecursionError:  # json nested thousands deep
        raise TameError(f"{path}: unreadable (nested too deep)") from None
    except (ValueError, TameError) as err:
        raise TameError(f"{path}: unreadable ({str(err).splitlines()[0][:120]})") from None
    return value if isinstance(value, dict) else {}


def summarise_runs(folders: list[Path]) -> tuple[list[RunSummary], int]:
    """Every folder's row; a folder whose files cannot be read gets a row saying why (status ``unreadable: ...``)
    instead of ending the table. Returns (rows, how many are unreadable)."""
    rows, bad = [], 0
    for folder in folders:
        try:
            rows.append(summarise_run(folder))
        except TameError as err:
            bad += 1
            why = str(err).removeprefix(f"{folder}/").removeprefix(f"{folder}: ")
            rows.append(RunSummary(folder, "?", [], "?", float("nan"), 0, 0, None, f"unreadable: {why}"))
    return rows, bad


def summarise_run(folder: str | os.PathLike) -> RunSummary:
    """The table's row for one run folder."""
    folder = Path(folder)
    if not is_run(folder):
        raise TameError(f"{folder}: not a training run (no {CONFIG_FILE} or {RECORD_FILE})")
    try:
        return _summary(folder)
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a record or config of unexpected shape
        raise TameError(
            f"{folder}: unexpected content in {RECORD_FILE} or {CONFIG_FILE} ({type(err).__name__}: {str(err)[:80]})"
        ) from None


def _summary(folder: Path) -> RunSummary:
    record = _read(folder / RECORD_FILE, json.loads)
    config = _read(folder / CONFIG_FILE, lambda data: load_yaml(data, str(folder / CONFIG_FILE))) or record.get(
        "config", {}
    )
    model, train = config.get("model", {}), config.get("train", {})
    recorded = [e["epoch"] for e in record.get("epochs", [])]
    epochs = int(train.get("epochs", 0))
    on_disk = [epoch for epoch, _ in _written(epoch_checkpoints(folder)) if epoch <= epochs or not epochs]
    epochs_done = max(recorded + on_disk, default=0)
    return RunSummary(
        folder=folder,
        model=str(model.get("name", "?")),
        layers=list(model.get("layers", [])),
        version=str(model.get("version", "?")),
        max_lr=float(train.get("max_lr", float("nan"))),
        epochs_done=epochs_done,
        epochs=epochs,
        best=_best(record.get("best")),
        status=run_status(folder, record, finished=epochs_done >= epochs > 0) + _best_missing(folder, record),
    )


def run_status(folder: Path, record: dict, *, finished: bool) -> str:
    """``finished``, ``running (step S)`` or ``stopped at step S`` (see the module docstring)."""
    if finished:
        return "finished"
    run = record.get("run") or {}
    if run.get("state") == "running":
        alive = process_alive(run)
        last = max((s["step"] for s in record.get("steps", [])), default=0)
        if alive is None:
            return f"running? (on {run.get('host')}, step {last})"
        if alive:
            return f"running (step {last})"
        return f"stopped at step {resume_step(folder, record)} (killed)"
    return f"stopped at step {resume_step(folder, record)}"


def process_alive(run: dict) -> bool | None:
    """Whether the run's process lives (None: it ran on another host, which cannot be asked from here)."""
    if run.get("host") != socket.gethostname():
        return None
    try:
        os.kill(int(run["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (KeyError, TypeError, ValueError, OSError):
        return False
    return True


def resume_step(folder: Path, record: dict) -> int:
    """The newest checkpoint's step (``epoch_N.pt`` counts as N x the steps per epoch of the record)."""
    per_epoch = (record.get("run") or {}).get("steps_per_epoch") or next(
        (e["step"] // e["epoch"] for e in record.get("epochs", []) if e.get("epoch")), None
    )
    steps = [step for step, _ in _written(step_checkpoints(folder))]
    if per_epoch:
        steps += [epoch * per_epoch for epoch, _ in _written(epoch_checkpoints(folder))]
    return max(steps, default=0)


def _best_missing(folder: Path, record: dict) -> str:
    """A note for a run whose record names a best epoch while ``best.pt`` is gone."""
    return f", {BEST_FILE} missing" if record.get("best") and not (folder / BEST_FILE).is_file() else ""


def _best(best) -> dict | None:
    """The record's best entry, checked for what the table prints (a ValueError otherwise)."""
    if best is None:
        return None
    numbers = isinstance(best, dict) and all(isinstance(best.get(m, 0.0), (int, float)) for m in METRICS)
    if not numbers or not isinstance(best.get("epoch"), int):
        raise ValueError(f"best is {str(best)[:40]!r}, not an epoch with its metrics")
    return best


def _written(checkpoints: list[tuple[int, Path]]) -> list[tuple[int, Path]]:
    """The checkpoints that hold bytes (an empty file is no checkpoint: a failed copy, a ``touch``)."""
    return [(number, path) for number, path in checkpoints if _size(path) > 0]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def runs_table(runs: list[RunSummary]) -> str:
    """A fixed-width table, one line per run."""
    header = ["run", "model", "layers", "version", "LR", "epochs", "best", *METRICS, "status"]
    rows = [header]
    for run in runs:
        best = run.best or {}
        rows.append(
            [
                str(run.folder),
                run.model,
                ",".join(run.layers),
                run.version,
                f"{run.max_lr:.3g}",
                f"{run.epochs_done}/{run.epochs}",
                str(best["epoch"]) if best else "-",
                *(f"{best[m]:.2f}" if m in best else "-" for m in METRICS),
                run.status,
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)
