"""Writes that fail during training (third probe, issue 25 item 5): a file-size limit (``ulimit -f``) while a
checkpoint is written gave a torch traceback (``unexpected pos``); a full disk while writing ``loss_curve.png`` said
``[Errno 28]`` without a file name. Now each is one line naming the file and the last good checkpoint; the older
checkpoints are intact and no temporary file is left."""

from __future__ import annotations

import errno
import re
from pathlib import Path

import pytest
import torch
from train_helpers import tiny_overrides

ADVICE = "(free space or fix the folder, then run again to resume)"


@pytest.mark.parametrize("at", [3, 5])
def test_a_file_size_limit_during_a_checkpoint_is_one_line(runner, data, tmp_path, at):
    """Checkpoints are ~420 KB; from step ``at`` on no file may grow past 200 KB: the next checkpoint fails."""
    argv = ["train", *tiny_overrides(data, tmp_path)]
    status, _, err = runner.run(argv, {"kind": "file-size-limit", "at": at, "kb": 200})
    failed = tmp_path / ("epoch_1.pt" if at + 1 == 6 else f"step_{at + 1}.pt")  # checkpoints every 2 of 6 steps
    last = tmp_path / f"step_{at - 1}.pt"
    assert status == 2, err
    assert err == f"tame: error: cannot write {failed}: File too large; the last good checkpoint is {last} {ADVICE}\n"
    assert not failed.exists() and not list(tmp_path.glob(".*.tmp*"))
    assert torch.load(last, weights_only=True)["step"] == at - 1


def _disk_full_for(monkeypatch, name: str) -> None:
    """Writes of files called ``name`` (their temporary files included) go to /dev/full: a real ENOSPC."""
    real_open = open

    def open_on_full_disk(file, mode="r", *args, **kwargs):
        if "w" in str(mode) and name in Path(str(file)).name:
            return real_open("/dev/full", mode, *args, **kwargs)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", open_on_full_disk)


@pytest.mark.parametrize("epochs", [1, 2])
def test_a_full_disk_while_writing_the_loss_curve_names_the_file(cli_here, data, tmp_path, monkeypatch, epochs):
    _disk_full_for(monkeypatch, "loss_curve.png")
    result = cli_here("train", *tiny_overrides(data, tmp_path, f"train.epochs={epochs}", "log.tensorboard=false"))
    monkeypatch.undo()
    result.assert_one_error_line(
        f"^tame: error: No space left on device: {re.escape(str(tmp_path / 'loss_curve.png'))}: training stopped; the "
        f"last good checkpoint is {re.escape(str(tmp_path / 'epoch_1.pt'))} \\(free space or fix the folder"
    )
    assert torch.load(tmp_path / "epoch_1.pt", weights_only=True)["step"] == 6  # written before the curve
    assert not list(tmp_path.glob(".*.tmp*"))


def test_the_system_error_of_a_short_write_is_kept(tmp_path):
    """``save_atomic`` under a file-size limit in a child process: EFBIG with the file's name, not torch's
    ``unexpected pos`` (the same limit a SLURM job's ``ulimit -f`` sets)."""
    import subprocess
    import sys

    code = (
        "import resource, torch\nfrom tame.io import save_atomic\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))\n"
        "try:\n    save_atomic({'a': torch.zeros(100_000)}, sys.argv[1])\n"
        "except OSError as err:\n    print(err.errno, err.filename)\n"
    )
    out = subprocess.run([sys.executable, "-c", "import sys\n" + code, str(tmp_path / "x.pt")], capture_output=True)
    assert out.stdout.decode().split() == [str(errno.EFBIG), str(tmp_path / "x.pt")], out.stderr.decode()
    assert list(tmp_path.iterdir()) == []
