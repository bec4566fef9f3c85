"""Training survives kill -9, corrupt checkpoints and failing writes, losing nothing (a crashed torchrun worker:
test_cluster.py).

The tiny run of tests/train_helpers.py: 2 epochs of 6 steps, a checkpoint every 2 steps (step_2, step_4, epoch_1,
step_8, step_10, epoch_2). Runs that must die are forked from one process that imported tame once
(tests/reliability/fault_runner.py) and SIGKILL themselves at a step drawn from a seeded RNG, or in the middle of a
checkpoint write; running the same command again (``train.resume: auto``) must end with exactly the AM of the
uninterrupted run.
"""

from __future__ import annotations

import errno
import json
import os
import random
import re
import shutil
import signal
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from train_helpers import attention_of, one_thread, tiny_overrides  # noqa: F401

STEPS_PER_EPOCH, EPOCHS, EVERY = 6, 2, 2


def checkpoint_name(step: int) -> str:
    return f"epoch_{step // STEPS_PER_EPOCH}.pt" if step % STEPS_PER_EPOCH == 0 else f"step_{step}.pt"


def assert_same_attention(expected: Path, got: Path) -> None:
    want, have = attention_of(expected), attention_of(got)
    assert want.keys() == have.keys()
    for key in want:
        assert torch.equal(want[key], have[key]), key


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def train_argv(data: Path, output_dir: Path, *extra: str) -> list[str]:
    return ["train", *tiny_overrides(data, output_dir, *extra)]


@pytest.fixture(scope="module")
def reference(reference_run) -> Path:
    """The uninterrupted run (shared with the other reliability tests)."""
    return reference_run


# -- kill -9 ------------------------------------------------------------------------------------------------------
_rng = random.Random(8)  # the steps and writes to die at: drawn once, the same on every run of the suite
_WRITES = STEPS_PER_EPOCH * EPOCHS // EVERY
_KILL_STEPS = [  # two steps in each epoch
    epoch * STEPS_PER_EPOCH + step
    for epoch in range(EPOCHS)
    for step in sorted(_rng.sample(range(1, STEPS_PER_EPOCH + 1), 2))
]
TRIALS = [("step", step) for step in _KILL_STEPS] + [
    (kind, _rng.randint(1, _WRITES)) for kind in ("mid-write", "before-replace", "after-replace")
]


def newest_before_kill(kind: str, at: int) -> int:
    """The step of the newest complete checkpoint when the fault strikes (0: none)."""
    if kind == "step":
        return (at - 1) // EVERY * EVERY
    return EVERY * (at if kind == "after-replace" else at - 1)


@pytest.mark.parametrize(("kind", "at"), TRIALS, ids=[f"{kind}-{at}" for kind, at in TRIALS])
def test_killed_run_resumes_to_the_uninterrupted_weights(runner, data, reference, tmp_path, kind, at):
    argv = train_argv(data, tmp_path)
    status, _, err = runner.run(argv, {"kind": kind, "at": at})
    assert status == -signal.SIGKILL, err
    assert not (tmp_path / "epoch_2.pt").exists() or (kind, at) == ("after-replace", _WRITES)
    if kind == "mid-write":  # half a file in the temporary, the checkpoint itself never appeared
        assert temporaries(tmp_path) and not (tmp_path / checkpoint_name(EVERY * at)).exists()

    status, out, err = runner.run(argv)  # the same command again
    assert status == 0 and err == "", err
    newest = newest_before_kill(kind, at)
    if newest:
        assert f"resuming from {tmp_path / checkpoint_name(newest)} (step {newest})" in out, out
    else:
        assert "resuming" not in out
    assert_same_attention(reference / "epoch_2.pt", tmp_path / "epoch_2.pt")
    assert temporaries(tmp_path) == []  # a temporary left by the killed write is cleaned up


def test_killed_twice_then_resumed(runner, data, reference, tmp_path):
    argv = train_argv(data, tmp_path)
    first, second = 3, 6  # steps 3 and 8: mid-epoch 1, then mid-epoch 2 of the resumed run (it starts at step 2)
    assert runner.run(argv, {"kind": "step", "at": first})[0] == -signal.SIGKILL
    status, out, _ = runner.run(argv, {"kind": "step", "at": second})
    assert status == -signal.SIGKILL and "(step 2)" in out
    status, out, err = runner.run(argv)
    assert status == 0 and f"resuming from {tmp_path / 'epoch_1.pt'} (step 6)" in out, err
    assert_same_attention(reference / "epoch_2.pt", tmp_path / "epoch_2.pt")
    record = json.loads((tmp_path / "train_record.json").read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]


# -- corrupt newest checkpoint -------------------------------------------------------------------------------------
def _flip_bytes(path: Path) -> None:
    """Flip 16 bytes in the middle of the largest record's tensor data: the file still opens, only the checksum can
    tell. (The middle of the whole file may fall in a record header's alignment padding, which no checksum covers.)"""
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda info: info.file_size)
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", data[record.header_offset + 26 : record.header_offset + 30])
    middle = record.header_offset + 30 + name_length + extra_length + record.file_size // 2  # local header: 30 bytes
    data[middle : middle + 16] = bytes(b ^ 0xFF for b in data[middle : middle + 16])
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "zero bytes": lambda p: p.write_bytes(b""),
    "zeroed (power loss)": lambda p: p.write_bytes(bytes(p.stat().st_size)),
    "bytes flipped": _flip_bytes,
    "not a checkpoint": lambda p: torch.save({"attention": {}}, p),
}


@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(runner, data, reference, tmp_path, corruption):
    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    CORRUPTIONS[corruption](tmp_path / "epoch_2.pt")
    status, out, err = runner.run(train_argv(data, tmp_path))
    assert status == 0, err
    assert err.startswith("tame: warning: skipping checkpoint epoch_2.pt: ") and len(err.splitlines()) == 1, err
    assert err.rstrip().endswith("; trying the previous one")
    assert f"resuming from {tmp_path / 'step_10.pt'} (step 10)" in out
    assert_same_attention(reference / "epoch_2.pt", tmp_path / "epoch_2.pt")  # step 11 and 12 redone


# -- failing writes ------------------------------------------------------------------------------------------------
CHECKPOINT_FILE = re.compile(r"(epoch|step)_\d+\.pt")  # the checkpoint or its temporary


def _full_disk(monkeypatch) -> None:
    """Checkpoint files are written to /dev/full: the real ENOSPC of a disk that filled up during the run."""
    real_open = open

    def open_on_full_disk(file, mode="r", *args, **kwargs):
        if "w" in mode and CHECKPOINT_FILE.search(Path(file).name):
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_on_full_disk)


def _read_only(monkeypatch) -> None:
    """Checkpoint files can be neither created nor replaced (EACCES), as in a folder made read-only during the run.
    Simulated: the tests run as root, for whom ``chmod 0o500`` does not stop writes."""
    real_open, real_replace = open, os.replace

    def refuse(path) -> None:
        if CHECKPOINT_FILE.search(Path(path).name):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    def open_read_only(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def replace_read_only(src, dst, *args, **kwargs):
        refuse(dst)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_read_only)
    monkeypatch.setattr(os, "replace", replace_read_only)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(
    ("failure", "message"), [(_full_disk, "No space left on device"), (_read_only, "Permission denied")]
)
def test_failing_write_is_one_line_and_keeps_the_previous_checkpoint(
    cli_here, data, reference, tmp_path, monkeypatch, failure, message
):
    from tame.checkpoint.format import load_checkpoint

    shutil.copytree(reference, tmp_path, dirs_exist_ok=True)
    (tmp_path / "epoch_2.pt").unlink()  # the run resumes from step_10 and must write epoch_2.pt
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.pt")}
    failure(monkeypatch)
    result = cli_here(*train_argv(data, tmp_path))
    monkeypatch.undo()
    error = result.assert_one_error_line(f"^tame: error: cannot write {re.escape(str(tmp_path / 'epoch_2.pt'))}: ")
    assert message in error
    assert f"the last good checkpoint is {tmp_path / 'step_10.pt'}" in error
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.pt")} == before  # nothing lost, nothing half-written
    assert temporaries(tmp_path) == []
    assert load_checkpoint(tmp_path / "step_10.pt")["step"] == 10


# -- torchrun ------------------------------------------------------------------------------------------------------
def test_the_saved_random_state_of_rank_1_restores():
    """Each rank restores its row of the checkpoint's stacked states (a view at an offset, which crashed torch)."""
    from tame.checkpoint.format import rng_state, set_rng_state

    cpu = torch.device("cpu")
    torch.manual_seed(0)
    first = rng_state(cpu)
    torch.manual_seed(1)
    second = rng_state(cpu)
    expected = torch.rand(3)
    stacked = {key: torch.stack([first[key], second[key]]) for key in first}  # [world, n], as saved
    set_rng_state({key: value[1] for key, value in stacked.items()}, cpu)
    assert torch.equal(torch.rand(3), expected)


# A worker that crashes under torchrun (restarted, MAX_RESTARTS): tests/reliability/test_cluster.py
