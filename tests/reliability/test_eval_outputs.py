"""Output paths of `tame eval` / `tame compare` (third probe, issue 25 item 20 and part of 22): `--per-image` to an
unwritable path failed only after the whole evaluation, naming a temporary file; `--per-image ''` was silently
ignored; `--pointing-tolerance -1` was accepted. All are refused before any model is built or image read: the
checkpoint given here does not exist, so a line about anything else proves the refusal came first."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def tame(cli_here, tmp_path):
    """``tame(command, *args)``: ``cli_here`` with a config and a checkpoint that does not exist."""
    config = tmp_path / "config.yaml"
    config.write_text("model: {name: test_resnet, pretrained: false}\n")

    def run(command, *args):
        return cli_here(command, "--config", config, "--checkpoint", tmp_path / "missing.pt", *args)

    return run


def _cases(tmp_path):
    (tmp_path / "a-file").write_text("x")
    os.mkfifo(tmp_path / "fifo.csv")
    (tmp_path / "folder").mkdir()
    return {
        "empty": ("", r"\(--per-image\): '' names no file"),
        "under-proc": ("/proc/tame/rows.csv", r"--per-image /proc/tame/rows\.csv: /proc/tame cannot be made in /proc"),
        "under-a-file": (f"{tmp_path}/a-file/rows.csv", r"cannot be made: .*a-file is a file, not a folder"),
        "fifo": (f"{tmp_path}/fifo.csv", r"cannot write .*fifo\.csv: it is a device, FIFO or socket"),
        "folder": (f"{tmp_path}/folder", r"--per-image .*folder is a folder"),
        "device": ("/dev/full", r"cannot write /dev/full: it is a device"),
    }


NAMES = ["empty", "under-proc", "under-a-file", "fifo", "folder", "device"]


@pytest.mark.parametrize("command", ["eval", "compare"])
@pytest.mark.parametrize("name", NAMES)
def test_a_bad_per_image_path_is_refused_before_the_work(tame, tmp_path, command, name):
    path, message = _cases(tmp_path)[name]
    result = tame(command, "--per-image", path)
    result.assert_one_error_line(message)


@pytest.mark.parametrize(
    ("out", "message"),
    [("", r"\(--out\): '' names no folder"), ("/proc/tame-eval", r"--out /proc/tame-eval: .*cannot be made in /proc")],
    ids=["empty", "under-proc"],
)
def test_a_bad_out_folder_is_refused_before_the_work(tame, out, message):
    tame("eval", "--out", out).assert_one_error_line(message)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", r"\(--pointing-tolerance\): a distance in pixels \(0 or more\), got -1"),
        ("nan", r"eval\.pointing_tolerance: must be a finite number, got nan"),
        ("inf", r"eval\.pointing_tolerance: must be a finite number, got inf"),
    ],
)
def test_a_negative_or_non_finite_pointing_tolerance_is_refused(tame, value, message):
    result = tame("eval", "--pointing-tolerance", value)
    result.assert_one_error_line(message)


def test_a_writable_per_image_path_passes_the_check(tame, tmp_path):
    result = tame("eval", "--per-image", tmp_path / "new" / "rows.csv")
    result.assert_one_error_line(r"missing\.pt")  # the next problem: the checkpoint (no folder was left behind)
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".tame-check-*"))
