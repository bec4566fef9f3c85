"""The run folder: never someone else's files, never two runs at once (docs/RELIABILITY.md, "Run folder, resume
and preemption"). Runs that must overlap are a real second process: ``fault_runner.py run`` pauses the first at a
step until the test lets it go."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import attention_of, one_thread, tiny_overrides  # noqa: F401

from tame.engine.run_lock import LOCK_FILE, MARKER, check_output_dir
from tame.errors import TameError

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"}


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def same_attention(a: Path, b: Path) -> bool:
    want, have = (attention_of(p) for p in (a, b))
    return want.keys() == have.keys() and all(torch.equal(want[k], have[k]) for k in want)


# -- output_dir that is not a run folder ---------------------------------------------------------------------------
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("''", "empty"),
        ("' '", "empty"),
        (".", "is the current folder"),
        ("./", "is the current folder"),
        ("~/", "is the home folder"),
        ("$HOME", "is the home folder"),
    ],
)
def test_current_or_home_folder_is_refused_and_nothing_is_written(
    cli_here, data, tmp_path, monkeypatch, value, message
):
    """``output_dir=''`` used to train into the current folder, over the user's own config.yaml and
    train_record.json."""
    work, home = tmp_path / "work", tmp_path / "home"
    for folder in (work, home):
        folder.mkdir()
        (folder / "config.yaml").write_text("my: own config\n")
        (folder / "train_record.json").write_text("{}")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    before = {folder: files_of(folder) for folder in (work, home)}
    result = cli_here("train", *tiny_overrides(data, Path("unused")), f"output_dir={value}")
    result.assert_one_error_line(f"^tame: error: config key output_dir: .*{message}")
    for folder, files in before.items():
        assert files_of(folder) == files and sorted(p.name for p in folder.iterdir()) == sorted(files)


@pytest.mark.parametrize("value", ["/", "//", "/.", "/tmp/.."])
def test_a_file_system_root_is_refused(value):
    with pytest.raises(TameError, match="is a file-system root"):
        check_output_dir(value, Path(value))


def test_a_folder_of_someone_elses_files_is_refused(cli, data, tmp_path):
    folder = tmp_path / "my_project"
    folder.mkdir()
    (folder / "config.yaml").write_text("my: own config\n")
    (folder / "train_record.json").write_text('{"mine": true}')
    before = files_of(folder)
    result = cli("train", *tiny_overrides(data, folder))
    result.assert_one_error_line(f"output_dir: {folder} is not empty and holds no tame run .*choose a new or empty")
    assert files_of(folder) == before and sorted(p.name for p in folder.iterdir()) == sorted(before)
    check = cli("train", "--check", *tiny_overrides(data, folder))  # the SLURM scripts' pre-flight check
    check.assert_one_error_line("is not empty and holds no tame run")


def test_a_run_folder_of_an_older_tame_without_the_marker_is_resumed(cli, data, reference_run, tmp_path):
    shutil.copytree(reference_run, tmp_path, dirs_exist_ok=True)
    (tmp_path / MARKER).unlink()
    (tmp_path / "epoch_2.pt").unlink()
    result = cli("train", *tiny_overrides(data, tmp_path))
    assert result.code == 0 and "(step 10)" in result.out, result.err
    assert (tmp_path / MARKER).is_file() and same_attention(reference_run / "epoch_2.pt", tmp_path / "epoch_2.pt")


# -- one writer per run folder -------------------------------------------------------------------------------------
def test_a_second_run_on_a_live_run_folder_fails_fast_naming_the_holder(cli, data, reference_run, tmp_path):
    """Two live runs on one folder used to mix silently: the second "resumed" from the first's step_2.pt and both
    exited 0. Now the second stops at once with one line naming the first (pid, host)."""
    run, ready, go = tmp_path / "run", tmp_path / "ready", tmp_path / "go"
    fault = {"kind": "pause", "at": 3, "ready": str(ready), "go": str(go)}  # the first waits at its 3rd step
    command = [sys.executable, str(HERE / "fault_runner.py"), "run", json.dumps(fault), "--"]
    first = subprocess.Popen(
        [*command, "train", *tiny_overrides(data, run)],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert first.poll() is None and time.monotonic() < deadline, first.stdout.read() if first.poll() else ""
            time.sleep(0.1)
        started = time.monotonic()
        second = cli("train", *tiny_overrides(data, run))
        took = time.monotonic() - started
        second.assert_one_error_line(
            f"output_dir {run} is in use by another run \\(pid {first.pid} on {socket.gethostname()}, since "
        )
        assert took < 30 and first.poll() is None and not go.exists()  # failed while the first still ran
    finally:
        go.touch()
        output = first.communicate(timeout=300)[0]
    assert first.returncode == 0, output[-3000:]
    assert same_attention(reference_run / "epoch_2.pt", run / "epoch_2.pt")  # the first run, undisturbed
    assert not (run / LOCK_FILE).exists()


def test_a_stale_lock_of_another_machine_is_taken_over_with_a_warning(cli, data, reference_run, tmp_path):
    shutil.copytree(reference_run, tmp_path, dirs_exist_ok=True)
    (tmp_path / "epoch_2.pt").unlink()
    (tmp_path / LOCK_FILE).write_text("pid 4242 on node-17, since 2026-01-01 00:00:00\n")  # its job was requeued
    result = cli("train", *tiny_overrides(data, tmp_path))
    assert result.code == 0, result.err
    assert result.err == (
        f"tame: warning: taking over the lock {tmp_path / LOCK_FILE} left by a run that is no longer alive "
        "(pid 4242 on node-17, since 2026-01-01 00:00:00)\n"
    )
    assert not (tmp_path / LOCK_FILE).exists() and same_attention(reference_run / "epoch_2.pt", tmp_path / "epoch_2.pt")
