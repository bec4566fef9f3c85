"""N processes = 1 process, everywhere: one launch per process count (1, 2, 3 CPU processes on gloo, a 17-image list
that no shard size divides) runs every sharded command (tests/dist_matrix_worker.py); each output must equal the
one-process output, numbers within ``TOLERANCE``:

- train, backbone_mode eval and train: every logged scalar of train_record.json (steps, epochs, validations, the
  best epoch), the AM of every checkpoint and best.pt, the dashboard images and maps (per epoch, validation panel);
- eval (every epoch) and compare (every method, AD/IC, ROAD, pointing games, per-image and per-class rows, sanity
  checks), both of the one-process run's checkpoints; lr-find's sweep (backbone_mode train); datalist predict
  with a random-weight classifier.

Timings (seconds, ms/img, steps/s) and where the run was (paths, pids, hosts) are not compared.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PROCESSES = (1, 2, 3)
TOLERANCE = dict(rel=1e-5, abs=1e-5)  # float32 sums in another order (measured: at most 1.2e-5 abs, 1e-5 rel)
TIMINGS = {"seconds", "ms/img", "ms_per_image", "steps_per_s", "images_per_s", "run", "config", "since", "until"}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outputs(data, tmp_path_factory) -> dict[int, Path]:
    """OUT folder of each process count (every launch in sequence: the machine's cores are few)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    folders = {}
    for n in PROCESSES:
        out = tmp_path_factory.mktemp(f"processes{n}")
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
        command += [str(REPO / "tests" / "dist_matrix_worker.py"), str(data), str(out)]
        command += [str(folders[1] / "train_train")] if folders else []  # eval, compare: the same checkpoints
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        first = done.stderr.find("Traceback")  # the failing rank's own traceback, before torchrun's report
        assert done.returncode == 0, f"{n} processes:\n{done.stderr[max(first, 0) :][:4000]}"
        folders[n] = out
    return folders


def same(a, b, where: str) -> None:
    """``a`` == ``b`` recursively: numbers within TOLERANCE, the rest exactly; timing keys skipped."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a.keys() - TIMINGS:
            same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, **TOLERANCE), f"{where}: {a} != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def read_csv(path: Path) -> list[dict]:
    def value(text: str):
        try:
            return float(text)
        except ValueError:
            return text

    with open(path, newline="") as handle:
        return [{key: value(v) for key, v in row.items()} for row in csv.DictReader(handle)]


def read_json(path: Path, *folders: Path):
    """The JSON with the launches' folders (``folders``: its own, the one-process one) written as OUT."""
    text = path.read_text()
    for folder in folders:
        text = text.replace(str(folder), "OUT")
    return json.loads(text)


def compare_tensors(a: dict, b: dict, where: str) -> None:
    assert a.keys() == b.keys(), where
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5, msg=f"{where}: {key}")


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_training_is_the_same_with_any_number_of_processes(outputs, mode):
    """Every logged scalar, each validation (loss terms too), the best epoch and the AM of every checkpoint."""
    one = outputs[1] / f"train_{mode}"
    record = read_json(one / "train_record.json", outputs[1])
    assert record["val"] and record["best"]["epoch"]
    for n in PROCESSES[1:]:
        run = outputs[n] / f"train_{mode}"
        same(record, read_json(run / "train_record.json", outputs[n]), f"{n} processes, {mode}: train_record")
        for name in ("epoch_1.pt", "epoch_2.pt", "best.pt"):
            compare_tensors(load(one / name)["attention"], load(run / name)["attention"], f"{n} processes, {name}")


def test_dashboard_images_are_the_same_with_any_number_of_processes(outputs):
    """The per-epoch explanations (4 images: more than a rank's batch of 3 or 2) and the validation panel."""
    logged = sorted(path.name for path in (outputs[1] / "dashboard").iterdir())
    assert any("val-panel" in name for name in logged) and any("_explanations_" in name for name in logged)
    for name in logged:
        first = load(outputs[1] / "dashboard" / name)
        assert len(first["images"]) == (8 if "val-panel" in name else 4), name
        for n in PROCESSES[1:]:
            assert sorted(path.name for path in (outputs[n] / "dashboard").iterdir()) == logged
            compare_tensors(first, load(outputs[n] / "dashboard" / name), f"{n} processes, {name}")


@pytest.mark.parametrize(
    "name",
    [
        "eval.csv",
        "eval/tame_list.json",
        "compare/compare.json",
        "compare/compare.csv",
        "compare_images.csv",
        "compare/compare_per_class.csv",
        "compare/compare_sanity.csv",
        "lr_find/lr_find.json",
        "predicted.txt",
    ],
)
def test_evaluations_are_the_same_with_any_number_of_processes(outputs, name):
    """Every method and metric, per image and per class, the sanity checks, lr-find's sweep, the predicted list."""

    def read(n: int):
        path = outputs[n] / name
        if path.suffix == ".json":
            return read_json(path, outputs[n], outputs[1])
        if path.suffix == ".csv":
            return read_csv(path)
        return path.read_text()

    expected = read(1)
    assert expected
    for n in PROCESSES[1:]:
        same(expected, read(n), f"{n} processes: {name}")
