"""A wandb that cannot start never stops a run: ``log.wandb=online`` without a login or a reachable server, or a
``WANDB_MODE`` wandb does not know, falls back to offline logging with one warning; if even offline fails, the run
goes on without wandb. Real wandb in a subprocess (its service process and global state stay out of pytest), with
HOME and the wandb variables of the environment replaced, and a timeout so that nothing can hang."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import tiny_overrides

REPO = Path(__file__).resolve().parents[2]


def short_run(data: Path, out: Path, *extra: str) -> list[str]:
    return tiny_overrides(data, out, "train.epochs=1", "train.max_steps_per_epoch=2", "log.images_per_epoch=0", *extra)


KEY = "0123456789abcdef0123456789abcdef01234567"  # the shape of an API key; no server will accept it


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "env", "reason"),
    [
        ("online", {}, r"could not start in online mode \(UsageError: No API key configured"),
        (
            "offline",
            {"WANDB_MODE": "bogus"},
            r"could not start in bogus mode \(ValidationError: .*input_value='bogus'.*ignoring WANDB_MODE=bogus",
        ),
        (
            "online",
            {"WANDB_API_KEY": KEY, "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_INIT_TIMEOUT": "5"},
            r"could not start in online mode \(",
        ),
    ],
    ids=["online-without-login", "bad-WANDB_MODE", "online-server-unreachable"],
)
def test_wandb_that_cannot_start_falls_back_to_offline(data, tmp_path, mode, env, reason):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    clean.update(HOME=str(tmp_path / "home"), PYTHONPATH=str(REPO), TQDM_DISABLE="1", **env)
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "tame.cli", "train", *short_run(data, out, f"log.wandb={mode}")]
    result = subprocess.run(argv, env=clean, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("tame: warning: wandb")]
    assert len(warnings) == 1, result.stderr
    assert re.search(reason, warnings[0]) and "logging offline instead" in warnings[0], warnings[0]
    assert (out / "epoch_1.pt").is_file()
    assert list((out / "wandb").glob("offline-run-*")), "no offline run was written"


def test_when_offline_fails_too_the_run_goes_on_without_wandb(cli_here, data, tmp_path, monkeypatch):
    import wandb

    def refuse(*args, **kwargs):
        raise RuntimeError("wandb is broken here\nsecond line")

    monkeypatch.setattr(wandb, "init", refuse)
    result = cli_here("train", *short_run(data, tmp_path, "log.wandb=offline"))
    assert result.code == 0, result.err
    assert "could not start in disabled mode (RuntimeError: wandb is broken here second line)" in result.err
    assert (
        "wandb could not start offline either (RuntimeError: wandb is broken here second line); training without"
        in result.err
    )
    assert (tmp_path / "epoch_1.pt").is_file()
