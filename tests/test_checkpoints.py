"""tame/checkpoint/naming.py: the one place that names and finds ``epoch_N.pt`` / ``step_S.pt`` files."""

from __future__ import annotations

import pytest

from tame.checkpoint.naming import (
    checkpoint_files,
    checkpoint_path,
    checkpoints_to_evaluate,
    epoch_checkpoints,
    epoch_file,
    is_temporary,
    newest_epoch_checkpoint,
    parse_name,
    step_checkpoints,
    step_file,
)
from tame.errors import TameError


@pytest.fixture
def run(tmp_path):
    """A training folder: epochs 1, 2 and 10 (6 steps each), step files, a temporary and unrelated files."""
    names = ["epoch_1.pt", "epoch_2.pt", "epoch_10.pt", "step_4.pt", "step_62.pt", "step_12.pt", ".step_8.pt.tmp42"]
    for name in [*names, "epoch_x.pt", "epoch_3.pt.bak", "notes.txt"]:
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_names():
    assert epoch_file("run", 3).as_posix() == "run/epoch_3.pt" and step_file("run", 40).as_posix() == "run/step_40.pt"
    assert parse_name("epoch_12.pt") == ("epoch", 12) and parse_name("step_5.pt") == ("step", 5)
    assert parse_name("epoch_x.pt") is None and parse_name("epoch_1.pt.tmp3") is None
    assert is_temporary(".epoch_2.pt.tmp1234") and not is_temporary("epoch_2.pt")


def test_checkpoint_path_names_epoch_ends_and_steps(tmp_path):
    assert checkpoint_path(tmp_path, 12, 6) == tmp_path / "epoch_2.pt"
    assert checkpoint_path(tmp_path, 13, 6) == tmp_path / "step_13.pt"


def test_a_folder_is_listed_in_numeric_order(run):
    assert epoch_checkpoints(run) == [(1, run / "epoch_1.pt"), (2, run / "epoch_2.pt"), (10, run / "epoch_10.pt")]
    assert [s for s, _ in step_checkpoints(run)] == [4, 12, 62]
    assert epoch_checkpoints(run / "missing") == [] and step_checkpoints(run / "missing") == []


def test_checkpoint_files_newest_first_and_an_epoch_file_wins_a_tie(run):
    found = checkpoint_files(run, steps_per_epoch=6)
    assert [(s, p.name) for s, p in found] == [
        (62, "step_62.pt"),
        (60, "epoch_10.pt"),
        (12, "epoch_2.pt"),  # step 12 is also epoch 2's end
        (12, "step_12.pt"),
        (6, "epoch_1.pt"),
        (4, "step_4.pt"),
    ]


def test_checkpoints_to_evaluate(run):
    assert checkpoints_to_evaluate(run) == [
        ("1", run / "epoch_1.pt"),
        ("2", run / "epoch_2.pt"),
        ("10", run / "epoch_10.pt"),
    ]
    assert checkpoints_to_evaluate(run / "epoch_2.pt") == [("2", run / "epoch_2.pt")]
    assert checkpoints_to_evaluate(run / "step_4.pt") == [("step_4", run / "step_4.pt")]
    assert newest_epoch_checkpoint(run) == run / "epoch_10.pt"
    assert newest_epoch_checkpoint(run / "step_4.pt") == run / "step_4.pt"
    with pytest.raises(TameError, match="holds no epoch_N.pt files"):
        checkpoints_to_evaluate(_empty(run))
    with pytest.raises(TameError, match="checkpoint not found"):
        checkpoints_to_evaluate(run / "epoch_99.pt")


def _empty(run):
    folder = run / "empty"
    folder.mkdir()
    return folder
