"""Settings changed between a run and its resume: refused when they would break the schedule or the data order,
in effect from the resumed step when they can be (docs/RELIABILITY.md, "Run folder, resume and preemption")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from train_helpers import tiny_overrides

from tame.checkpoint.naming import parse_name
from tame.engine.optim import build_schedule


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def copy_up_to(reference: Path, folder: Path, step: int) -> None:
    """The reference run's folder as it was after ``step`` (later checkpoints removed)."""
    shutil.copytree(reference, folder, dirs_exist_ok=True)
    for path in folder.glob("*.pt"):
        kind, number = parse_name(path.name)
        if (number * 6 if kind == "epoch" else number) > step:
            path.unlink()


@pytest.mark.parametrize(("epochs", "from_step"), [(3, 12), (3, 8), (1, 8), (1, 12)])
def test_changed_epochs_on_resume_is_refused_naming_both_values(cli, data, reference_run, tmp_path, epochs, from_step):
    """More epochs used to train the rest of the old schedule and then die in OneCycleLR (the new epochs never
    ran); fewer ended at once with exit 0, rewriting config.yaml with the new value."""
    copy_up_to(reference_run, tmp_path, from_step)
    before = files_of(tmp_path)
    result = cli("train", *tiny_overrides(data, tmp_path, f"train.epochs={epochs}"))
    result.assert_one_error_line(r"belongs to a run with train\.epochs=2, this run has train\.epochs=" + str(epochs))
    assert "cannot be stretched or cut mid-run" in result.err
    assert files_of(tmp_path) == before  # nothing written, the lock file gone


def test_changed_batch_size_with_the_same_steps_per_epoch_is_refused(cli, data, tmp_path):
    """With ``train.max_steps_per_epoch`` capping both, batch 8 and batch 4 give the same steps per epoch: the
    resumed position (2 batches into the epoch) would point at other images."""
    capped = ("train.max_steps_per_epoch=3", "train.checkpoint_every=2")
    status = cli("train", *tiny_overrides(data, tmp_path, *capped, "train.epochs=1")).code
    assert status == 0
    (tmp_path / "epoch_1.pt").unlink()  # resume from step_2.pt
    result = cli("train", *tiny_overrides(data, tmp_path, *capped, "train.epochs=1", "data.batch_size=4"))
    result.assert_one_error_line(r"data\.batch_size=8, this run has data\.batch_size=4")


def one_cycle_lrs(max_lr: float, total: int) -> list[float]:
    """The weights' LR at each step 1..total of a fresh run's schedule."""
    params = [torch.zeros(1, requires_grad=True) for _ in range(2)]
    optimizer = torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]]}], lr=max_lr, momentum=0.9)
    schedule = build_schedule(optimizer, max_lr, total)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    return lrs


def test_changed_max_lr_and_weight_decay_take_effect_from_the_resumed_step(cli, data, reference_run, tmp_path):
    """The non-finite-loss message advises a lower ``train.max_lr`` and a rerun; the checkpoint's optimiser state
    used to bring the old LR back silently (the warning listed the change, the run ignored it)."""
    copy_up_to(reference_run, tmp_path, 6)
    result = cli("train", *tiny_overrides(data, tmp_path, "train.max_lr=5e-3", "train.weight_decay=0.01"))
    assert result.code == 0, result.err
    assert "train.max_lr, train.weight_decay changed: in effect from step 7 on" in result.err
    old, new = one_cycle_lrs(1e-2, 12), one_cycle_lrs(5e-3, 12)
    record = json.loads((tmp_path / "train_record.json").read_text())
    logged = {entry["step"]: entry["lr"] for entry in record["steps"]}
    assert [logged[s] for s in (2, 4, 6)] == [old[s - 1] for s in (2, 4, 6)]  # before the resume: the old peak
    assert [logged[s] for s in (8, 10, 12)] == [new[s - 1] for s in (8, 10, 12)]  # after: the new one's schedule
    groups = torch.load(tmp_path / "epoch_2.pt", weights_only=True)["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.01, 0.0] and groups[0]["max_lr"] == 5e-3


def test_unchanged_resume_keeps_the_checkpoint_schedule_exactly(cli, data, reference_run, tmp_path):
    """Nothing changed: the saved optimiser and schedule state are used as they are (same weights as the
    uninterrupted run; no warning)."""
    copy_up_to(reference_run, tmp_path, 8)
    result = cli("train", *tiny_overrides(data, tmp_path))
    assert result.code == 0 and result.err == "", result.err
    want = torch.load(reference_run / "epoch_2.pt", weights_only=True)
    have = torch.load(tmp_path / "epoch_2.pt", weights_only=True)
    assert all(torch.equal(want["attention"][k], have["attention"][k]) for k in want["attention"])
    assert want["optimizer"]["param_groups"] == have["optimizer"]["param_groups"]


LCAM_SCHEDULE = ("train.schedule=epoch_decay", "train.lr_decay=0.5", "train.cycle_momentum=false")


def test_epoch_decay_run_resumes_to_the_same_weights_and_adopts_a_new_decay(cli, data, tmp_path):
    """L-CAM's schedule (LambdaLR, no OneCycleLR attributes) resumes exactly; a new ``train.lr_decay`` or
    ``train.max_lr`` is in effect from the resumed step, as for the one-cycle schedule."""
    full = tmp_path / "full"
    assert cli("train", *tiny_overrides(data, full, *LCAM_SCHEDULE, "train.bias_weight_decay=true")).code == 0
    logged = {e["step"]: e["lr"] for e in json.loads((full / "train_record.json").read_text())["steps"]}
    assert [logged[s] for s in (2, 6, 8, 12)] == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3])
    resumed = tmp_path / "resumed"
    copy_up_to(full, resumed, 8)
    result = cli("train", *tiny_overrides(data, resumed, *LCAM_SCHEDULE, "train.bias_weight_decay=true"))
    assert result.code == 0 and result.err == "", result.err
    want = torch.load(full / "epoch_2.pt", weights_only=True)["attention"]
    have = torch.load(resumed / "epoch_2.pt", weights_only=True)["attention"]
    assert all(torch.equal(want[k], have[k]) for k in want)
    changed = tmp_path / "changed"
    copy_up_to(full, changed, 6)
    overrides = (*LCAM_SCHEDULE, "train.bias_weight_decay=true", "train.lr_decay=0.25", "train.max_lr=2e-2")
    result = cli("train", *tiny_overrides(data, changed, *overrides))
    assert result.code == 0, result.err
    assert "train.max_lr, train.lr_decay changed: in effect from step 7 on" in result.err
    logged = {e["step"]: e["lr"] for e in json.loads((changed / "train_record.json").read_text())["steps"]}
    assert [logged[s] for s in (6, 8, 12)] == pytest.approx([1e-2, 2e-2 * 0.25, 2e-2 * 0.25])


def test_changed_schedule_on_resume_is_refused(cli, data, reference_run, tmp_path):
    copy_up_to(reference_run, tmp_path, 6)
    result = cli("train", *tiny_overrides(data, tmp_path, *LCAM_SCHEDULE))
    result.assert_one_error_line(r"train\.schedule=one_cycle, this run has train\.schedule=epoch_decay")
