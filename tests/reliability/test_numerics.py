"""Non-finite losses stop training with one line naming the step and the last good checkpoint; an fp16 overflow is
the scaler's business and never stops a run. Fills the gaps of tests/test_train.py (NaN at step 5 with step
checkpoints, one overflowing fp16 run): inf, a NaN before any checkpoint or between sparse flushes, resuming after
the stop, and the scaler's state across a resume."""

from __future__ import annotations

import re

import pytest
import torch
from train_helpers import one_thread, tiny_overrides  # noqa: F401

from tame.checkpoint.format import load_checkpoint
from tame.models import TameModel

pytestmark = pytest.mark.usefixtures("one_thread")


def poison_step(monkeypatch, step: int, value: float) -> None:
    """The loss of training step ``step`` (counted in this process) becomes ``value``; the others stay."""
    original = TameModel.training_step
    calls = []

    def poisoned(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == step:
            out["loss"] = out["loss"] * 0 + value
        return out

    monkeypatch.setattr(TameModel, "training_step", poisoned)


@pytest.mark.parametrize(
    ("value", "step", "extra", "newest"),
    [
        (float("inf"), 5, (), "step_4.pt"),
        (float("-inf"), 9, (), "step_8.pt"),
        (float("nan"), 1, (), None),  # before any checkpoint
        (float("nan"), 3, ("log.log_every=0", "train.checkpoint_every=0"), None),  # found only at the epoch's end
    ],
    ids=["inf", "-inf", "nan-first-step", "nan-sparse-flushes"],
)
def test_non_finite_loss_is_one_line_naming_step_and_checkpoint(
    cli_here, data, tmp_path, monkeypatch, value, step, extra, newest
):
    poison_step(monkeypatch, step, value)
    result = cli_here("train", *tiny_overrides(data, tmp_path, *extra))
    last = re.escape(str(tmp_path / newest)) if newest else r"none \(none written yet\)"
    result.assert_one_error_line(rf"non-finite loss at step {step} \(loss=.*the last good checkpoint is {last}")
    written = list(tmp_path.glob("*.pt"))
    assert (newest is None and written == []) or tmp_path / newest in written
    for path in written:  # nothing at or past the bad step was saved
        state = load_checkpoint(path)
        assert state["step"] < step and all(torch.isfinite(v.float()).all() for v in state["attention"].values())


def test_run_again_after_a_nan_resumes_from_the_last_good_checkpoint(cli_here, data, tmp_path, monkeypatch):
    poison_step(monkeypatch, 7, float("nan"))
    cli_here("train", *tiny_overrides(data, tmp_path)).assert_one_error_line("non-finite loss at step 7")
    monkeypatch.undo()
    result = cli_here("train", *tiny_overrides(data, tmp_path, "train.max_lr=5e-3"))  # the message's advice
    assert result.code == 0, result.err
    assert f"resuming from {tmp_path / 'epoch_1.pt'} (step 6)" in result.out
    assert "train.max_lr: 0.01 -> 0.005" in result.err  # the changed setting is reported
    state = load_checkpoint(tmp_path / "epoch_2.pt")
    assert all(torch.isfinite(v.float()).all() for v in state["attention"].values())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_fp16_scaler_state_survives_a_resume(data, tmp_path, monkeypatch):
    """Overflowing fp16 steps are skipped and the scale lowered, never a stop; the scaler's state is part of the
    checkpoint, so a run killed mid-epoch resumes to exactly the uninterrupted run's weights and scale."""
    from tame.config import load_config
    from tame.engine.train import train

    scaler_class = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda *a, **k: scaler_class(*a, init_scale=2.0**40, **k))
    overrides = ("train.amp=fp16", "train.epochs=1")
    train(load_config(None, tiny_overrides(data, tmp_path / "whole", *overrides)))

    original, calls = TameModel.training_step, []

    def dies_at_step_5(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    cfg = load_config(None, tiny_overrides(data, tmp_path / "resumed", *overrides))
    monkeypatch.setattr(TameModel, "training_step", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(TameModel, "training_step", original)
    assert load_checkpoint(tmp_path / "resumed" / "step_4.pt")["scaler"]["scale"] < 2.0**40  # it did overflow
    train(cfg)
    whole, resumed = (load_checkpoint(tmp_path / name / "epoch_1.pt") for name in ("whole", "resumed"))
    assert whole["scaler"] == resumed["scaler"]
    for key, value in whole["attention"].items():
        assert torch.equal(value, resumed["attention"][key]), key
        assert torch.isfinite(value.float()).all()
