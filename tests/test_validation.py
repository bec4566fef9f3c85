"""Validation inside ``tame train``, best.pt, the val/ dashboards and ``tame runs`` (tiny runs on CPU)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import attention_of, one_thread, tiny_config, tiny_overrides  # noqa: F401

from tame.checkpoint.naming import checkpoint_files, checkpoints_to_evaluate
from tame.cli import main
from tame.config import load_config
from tame.distributed import Dist
from tame.engine.runs import find_runs, summarise_run
from tame.engine.train import train
from tame.engine.validation import BEST_FILE, Validation
from tame.errors import TameError
from tame.evaluation.loop import AD_IC_COLUMNS
from tame.models import TameModel

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")
CPU = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
METRIC_KEYS = {"loss", "ce", "area", "var", "accuracy", "images", "seconds", *AD_IC_COLUMNS}


def validated(data: Path, out: Path, *extra: str) -> list[str]:
    """The tiny run, validated at epoch ends and every 4 steps (6 steps per epoch: at 4, 6, 8, 12)."""
    return tiny_overrides(
        data, out, f"data.val_root={data}", f"data.val_list={data / 'val.txt'}", "train.val_every=4", *extra
    )


def run_once(cfg) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)


@pytest.fixture(scope="module")
def validated_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("validated")
    run_once(load_config(None, validated(data, out, "log.tensorboard=true")))
    return out


@pytest.fixture(scope="module")
def plain_run(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plain")
    run_once(tiny_config(data, out))
    return out


def assert_same_weights(a: Path, b: Path) -> None:
    expected, got = attention_of(a), attention_of(b)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_every_epoch_and_every_val_every_steps_are_recorded(validated_run):
    record = json.loads((validated_run / "train_record.json").read_text())
    assert [(v["step"], v["epoch"]) for v in record["val"]] == [(4, None), (6, 1), (8, None), (12, 2)]
    for entry in record["val"]:
        assert entry.keys() >= METRIC_KEYS
        assert entry["images"] == 6  # every validation image once
        assert 0 <= entry["accuracy"] <= 100 and entry["loss"] > 0
    assert record["run"]["state"] == "finished"


def test_validation_leaves_the_training_numbers_unchanged(validated_run, plain_run):
    """Eval-mode BatchNorm, torch's random state restored: the same weights as a run without validation."""
    assert_same_weights(plain_run / "epoch_2.pt", validated_run / "epoch_2.pt")
    assert not (plain_run / BEST_FILE).exists()  # no data.val_list: no validation


def test_class_sensitivity_is_validated_when_asked_and_changes_no_weight(data, plain_run, tmp_path):
    run_once(load_config(None, validated(data, tmp_path, "train.val_class_sensitivity=2")))
    record = json.loads((tmp_path / "train_record.json").read_text())
    for entry in record["val"]:
        assert all(0 <= entry[key] <= 100 for key in ("CS selective", "CS mass", "CS peak"))
    assert_same_weights(plain_run / "epoch_2.pt", tmp_path / "epoch_2.pt")


def test_tensorboard_has_val_scalars_and_the_panel(validated_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(validated_run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for key in ("loss", "ce", "area", "var", "accuracy", *AD_IC_COLUMNS):
        assert f"val/{key}" in scalars, key
    record = json.loads((validated_run / "train_record.json").read_text())
    logged = {event.step: event.value for event in events.Scalars("val/AD(15%)")}
    assert logged == pytest.approx({v["step"]: v["AD(15%)"] for v in record["val"]})
    assert "train/images_per_s" in scalars and "train/lr" in scalars
    assert [event.step for event in events.Images("val/panel")] == [4, 6, 8, 12]  # the same 6 images each time


def test_best_pt_is_the_epoch_with_the_best_metric(validated_run):
    record = json.loads((validated_run / "train_record.json").read_text())
    epochs = {v["epoch"]: v["AD(15%)"] for v in record["val"] if v["epoch"]}
    best = min(epochs, key=lambda e: (epochs[e], e))  # lower AD is better; a tie keeps the earlier epoch
    assert record["best"]["epoch"] == best and record["best"]["AD(15%)"] == epochs[best]
    assert_same_weights(validated_run / f"epoch_{best}.pt", validated_run / BEST_FILE)
    other = 3 - best
    assert not all(
        torch.equal(a, b)
        for a, b in zip(
            attention_of(validated_run / f"epoch_{other}.pt").values(), attention_of(validated_run / BEST_FILE).values()
        )
    )


def test_best_pt_confuses_neither_resume_nor_eval(validated_run):
    assert [label for label, _ in checkpoints_to_evaluate(validated_run)] == ["1", "2"]
    assert BEST_FILE not in [path.name for _, path in checkpoint_files(validated_run, 6)]
    assert checkpoints_to_evaluate(validated_run / BEST_FILE)[0][0] == "best"
    model = TameModel.from_config(tiny_config(Path("."), Path(".")).model, input_size=32)
    model.load_attention(validated_run / BEST_FILE)  # tame eval / explain read it like any checkpoint


@pytest.mark.parametrize(
    ("key", "values", "expected"),
    [("AD(15%)", [5.0, 3.0, 3.0, 4.0], 2), ("IC(50%)", [5.0, 7.0, 7.0, float("nan")], 2), ("loss", [1.0, 2.0], 1)],
)
def test_select_by_direction_and_ties(key, values, expected):
    cfg = load_config(None, [f"train.select_by={key}"])
    validation = Validation(cfg, CPU, model=None, loader=None, output_dir=Path("."), steps_per_epoch=1)
    for epoch, value in enumerate(values, start=1):
        entry = {"epoch": epoch, key: value}
        if validation._better(entry):
            validation.best = entry
    assert validation.best["epoch"] == expected


def test_select_by_is_checked_with_directions():
    with pytest.raises(TameError, match=r"train\.select_by: 'AD15'.*lower is better: AD\(100%\).*higher is better"):
        load_config(None, ["train.select_by=AD15"])
    with pytest.raises(TameError, match="train.val_every: must not be negative"):
        load_config(None, ["train.val_every=-1"])


def test_no_val_list_means_no_validation_with_an_info_line(caplog):
    cfg = load_config(None, [])
    assert cfg.data.val_list is None
    with caplog.at_level(logging.INFO, logger="tame.engine.validation"):
        validation = Validation.build(cfg, CPU, model=None, output_dir=Path("."), steps_per_epoch=1)
    assert not validation.enabled
    assert "no validation during training: data.val_list is not set" in caplog.text


def test_a_missing_val_list_fails_before_anything_is_written(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    args = ["train", *tiny_overrides(data, out, f"data.val_root={data}", f"data.val_list={data / 'nope.txt'}")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data.val_list" in err and "nope.txt not found" in err
    assert not out.exists()
    assert main([args[0], "--check", *args[1:]]) == 2  # `tame train --check` checks it too
    assert "nope.txt not found" in capsys.readouterr().err
    monkeypatch.delenv("TAME_DATA", raising=False)
    unset = ["train", *tiny_overrides(data, out, "data.val_root=${TAME_DATA}/val", f"data.val_list={data / 'val.txt'}")]
    assert main(unset) == 2
    err = capsys.readouterr().err.strip()
    assert "data.val_root" in err and "TAME_DATA" in err
    assert err.endswith("or data.val_list=null to train without validation)")
    assert not out.exists()


def test_stopped_before_validating_an_epoch_resumes_to_the_same_best(data, validated_run, tmp_path, monkeypatch):
    """Killed after epoch_1.pt is written but before it is validated: the resumed run validates it first."""
    cfg = load_config(None, validated(data, tmp_path))
    original = Validation.epoch_end

    def dies(self, epoch, step):
        raise KeyboardInterrupt

    monkeypatch.setattr(Validation, "epoch_end", dies)
    with pytest.raises(KeyboardInterrupt):
        run_once(cfg)
    monkeypatch.setattr(Validation, "epoch_end", original)
    stopped = json.loads((tmp_path / "train_record.json").read_text())
    assert stopped["run"]["state"] == "stopped" and [v["step"] for v in stopped["val"]] == [4]
    assert (tmp_path / "epoch_1.pt").exists() and not (tmp_path / BEST_FILE).exists()
    assert summarise_run(tmp_path).status == "stopped at step 6"
    run_once(cfg)
    record, reference = (json.loads((run / "train_record.json").read_text()) for run in (tmp_path, validated_run))
    assert [(v["step"], v["epoch"]) for v in record["val"]] == [(4, None), (6, 1), (8, None), (12, 2)]
    for got, expected in zip(record["val"], reference["val"]):
        assert got["AD(15%)"] == pytest.approx(expected["AD(15%)"]) and got["loss"] == pytest.approx(expected["loss"])
    assert record["best"]["epoch"] == reference["best"]["epoch"]
    assert_same_weights(validated_run / BEST_FILE, tmp_path / BEST_FILE)
    assert_same_weights(validated_run / "epoch_2.pt", tmp_path / "epoch_2.pt")


def test_tame_runs_table_of_finished_and_killed_runs(data, validated_run, plain_run, tmp_path, capsys):
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "tame.cli", "train", *validated(data, killed, "train.epochs=100")]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (killed / "epoch_1.pt").exists():
            assert process.poll() is None, process.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the run wrote no epoch_1.pt in time"
            time.sleep(0.2)
        assert json.loads((killed / "train_record.json").read_text())["run"]["state"] == "running"
        assert summarise_run(killed).status.startswith("running (step ")
    finally:
        process.kill()  # SIGKILL: nothing is said on the way out
        process.wait()
    newest = max(step for step, _ in checkpoint_files(killed, 6))
    assert main(["runs", str(validated_run), str(plain_run), str(killed)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "run",
        "model",
        "layers",
        "version",
        "LR",
        "epochs",
        "best",
        "AD(15%)",
        "IC(15%)",
        "status",
    ]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    record = json.loads((validated_run / "train_record.json").read_text())
    best = record["best"]
    assert rows[str(validated_run)][1:] == [
        "test_resnet",
        "layer2,layer3,layer4",
        "TAME",
        "0.01",
        "2/2",
        str(best["epoch"]),
        f"{best['AD(15%)']:.2f}",
        f"{best['IC(15%)']:.2f}",
        "finished",
    ]
    assert rows[str(plain_run)][5:] == ["2/2", "-", "-", "-", "finished"]
    assert rows[str(killed)][-5:] == ["stopped", "at", "step", str(newest), "(killed)"]
    assert find_runs([tmp_path]) == [killed]  # a folder of runs lists the runs inside it


def test_tame_runs_refuses_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["runs", str(tmp_path)]) == 2
    assert "not a training run" in capsys.readouterr().err
