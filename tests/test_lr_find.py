"""The LR range test: one pass with an exponentially rising LR, a plot and a finite suggestion."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from train_helpers import make_training_data, one_thread, tiny_overrides  # noqa: F401

from tame.cli import main
from tame.config import load_config
from tame.engine.lr_suggestion import format_lr

pytestmark = pytest.mark.usefixtures("one_thread")


def test_lr_find_writes_curve_plot_and_says_why_a_short_sweep_suggests_nothing(tmp_path, capsys):
    data = make_training_data(tmp_path / "data")
    out = tmp_path / "lr"
    args = ["lr-find", "--start-lr", "1e-6", "--end-lr", "1e2", "--out", str(out), *tiny_overrides(data, tmp_path)]
    assert main(args) == 0
    result = json.loads((out / "lr_find.json").read_text())
    assert (out / "lr_find.png").stat().st_size > 0
    lrs, smoothed = result["lrs"], result["smoothed_loss"]
    assert 1 < len(lrs) <= 6 and len(smoothed) == len(lrs) and lrs[0] == pytest.approx(1e-6)
    assert all(b > a for a, b in zip(lrs, lrs[1:]))  # exponential sweep
    minimum = result["minimum_lr"]
    assert math.isfinite(minimum) and minimum == lrs[smoothed.index(min(smoothed))]
    assert result["stopped"] in ("end of pass", "diverged", "non-finite loss")
    # six steps have no shape to read: no suggestion, and the reason (not the last LR as "the minimum")
    assert result["suggested_max_lr"] is None and result["steepest_lr"] is None
    assert result["suggestion_reason"] == f"only {len(lrs)} steps swept (at least 8 needed)"
    printed = capsys.readouterr().out
    assert f"no suggested max LR: only {len(lrs)} steps swept" in printed and "train.max_lr=" not in printed
    assert f"minimum of the smoothed loss at {format_lr(minimum)}" in printed


def test_lr_find_check_takes_the_sweep_options(tmp_path, capsys):
    """What launch/torchrun.sh runs before starting GPUS>1 sweeps: the training's checks, the sweep's options
    accepted (before, they went to `tame train --check`: "unrecognized arguments", exit 2)."""
    data = make_training_data(tmp_path / "data")
    run = tmp_path / "run"
    args = ["lr-find", "--check", "--nproc", "2", "--end-lr", "100", "--steps", "4", *tiny_overrides(data, run)]
    assert main(args) == 0
    assert "config OK (defaults, 2 process(es) per node)" in capsys.readouterr().out
    assert not run.exists()  # checked, not swept
    assert main([*args[:3], "3", *args[4:]]) == 2  # batch 8 does not split over 3 processes


def test_lr_find_suggests_a_tenth_of_the_minimum_and_prints_it_short(tmp_path, capsys):
    """24 steps of batch 2 up to an LR where the loss turns: a suggestion, printed as e.g. 8.2e2, that train takes."""
    data = make_training_data(tmp_path / "data")
    out = tmp_path / "lr"
    overrides = tiny_overrides(data, tmp_path, "data.batch_size=2")
    assert main(["lr-find", "--start-lr", "1e-6", "--end-lr", "1e6", "--out", str(out), *overrides]) == 0
    result = json.loads((out / "lr_find.json").read_text())
    lrs, smoothed = result["lrs"], result["smoothed_loss"]
    assert len(lrs) == 24 and result["minimum_lr"] == lrs[smoothed.index(min(smoothed))]
    assert result["suggested_max_lr"] == pytest.approx(result["minimum_lr"] / 10)
    assert result["suggestion_reason"] == "" and result["steepest_lr"] < result["minimum_lr"]
    printed = capsys.readouterr().out
    suggested = format_lr(result["suggested_max_lr"])
    assert f"suggested max LR {suggested}, a tenth of the minimum" in printed
    assert printed.rstrip().endswith(f"train with train.max_lr={suggested}")
    taken = load_config(None, [f"train.max_lr={suggested}"]).train.max_lr
    assert taken == pytest.approx(result["suggested_max_lr"], rel=0.05)


def test_lr_find_rejects_a_bad_range(tmp_path, capsys):
    assert main(["lr-find", "--start-lr", "1", "--end-lr", "1e-3", *tiny_overrides(tmp_path, tmp_path)]) == 2
    assert "--start-lr" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("lr_find", "used"),
    [({"suggested_max_lr": 0.0300000001, "minimum_lr": 0.3}, 0.0300000001), ({"suggested_max_lr": None}, 1e-2)],
)
def test_the_demo_trains_tame_with_the_suggestion_when_there_is_one(tmp_path, monkeypatch, lr_find, used):
    """The demo's TAME stage takes the LR range test's suggestion as train.max_lr (else configs/demo.yaml's 1e-2);
    its report says which."""
    import tame.engine.train
    from tame.demo import pipeline, report
    from tame.demo.sizes import QUICK

    trained = []
    monkeypatch.setattr(tame.engine.train, "train", lambda cfg: trained.append(cfg.train.max_lr))
    config = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"
    cfg, overrides = pipeline.demo_config(config, tmp_path, QUICK)
    demo = pipeline.DemoRun(config, tmp_path, QUICK, tuple(overrides), cfg)
    outputs = pipeline._train_stage(demo, {"val_accuracy": 1.0}, lr_find, force=True)
    assert trained == [used] and outputs["max_lr"] == used
    facts = report._facts(cfg, {"lr-find": lr_find, "tame": outputs}, threads=2)
    assert f"max LR {format_lr(used)}," in facts["config"]
    expected = "3e-2 (a tenth of the minimum at 3e-1), used for TAME" if lr_find["suggested_max_lr"] else "none ("
    assert facts["suggested max LR"].startswith(expected)
