"""Status messages: logging set up once (INFO to stdout, warnings to stderr, rank 0 only below WARNING)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tame.log import setup_logging

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def restore_logging():
    logger = logging.getLogger("tame")
    state = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = state


def test_status_to_stdout_warnings_to_stderr_of_the_moment(capsys, restore_logging):
    setup_logging()
    capsys.readouterr()  # whatever sys.stdout / sys.stderr are when a record is emitted receive it
    log = logging.getLogger("tame.engine.train")
    log.info("training done")
    log.debug("hidden at the default verbosity")
    log.warning("resuming with changed settings")
    captured = capsys.readouterr()
    assert captured.out == "training done\n"
    assert captured.err == "tame: warning: resuming with changed settings\n"


def test_other_ranks_show_only_warnings_tagged_with_their_rank(capsys, restore_logging):
    setup_logging(rank=1)
    log = logging.getLogger("tame.checkpoint.resume")
    log.info("resuming from step_4.pt")
    log.warning("random states start afresh")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "tame: warning: [rank 1] random states start afresh\n"


def test_library_use_without_setup_still_shows_warnings():
    code = (
        "import logging, tame.engine.train, tame.engine.lr_find, tame.models;"
        "logging.getLogger('tame.checkpoint.resume').warning('skipping checkpoint epoch_2.pt');"
        "logging.getLogger('tame.engine.train').info('training done')"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "skipping checkpoint epoch_2.pt" and done.stdout == ""
