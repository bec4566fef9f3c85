"""The LR range test: one pass with an exponentially rising LR, a plot and a finite suggestion."""

from __future__ import annotations

import json
import math

import pytest
from train_helpers import make_training_data, one_thread, tiny_overrides  # noqa: F401

from tame.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_lr_find_writes_curve_plot_and_suggestion(tmp_path, capsys):
    data = make_training_data(tmp_path / "data")
    out = tmp_path / "lr"
    args = ["lr-find", "--start-lr", "1e-6", "--end-lr", "1e2", "--out", str(out), *tiny_overrides(data, tmp_path)]
    assert main(args) == 0
    result = json.loads((out / "lr_find.json").read_text())
    assert (out / "lr_find.png").stat().st_size > 0
    lrs, smoothed = result["lrs"], result["smoothed_loss"]
    assert 1 < len(lrs) <= 6 and len(smoothed) == len(lrs) and lrs[0] == pytest.approx(1e-6)
    assert all(b > a for a, b in zip(lrs, lrs[1:]))  # exponential sweep
    suggested = result["suggested_max_lr"]
    assert math.isfinite(suggested) and suggested == lrs[smoothed.index(min(smoothed))]
    assert result["stopped"] in ("end of pass", "diverged", "non-finite loss")
    assert f"train.max_lr={suggested:.3g}" in capsys.readouterr().out


def test_lr_find_rejects_a_bad_range(tmp_path, capsys):
    assert main(["lr-find", "--start-lr", "1", "--end-lr", "1e-3", *tiny_overrides(tmp_path, tmp_path)]) == 2
    assert "--start-lr" in capsys.readouterr().err
