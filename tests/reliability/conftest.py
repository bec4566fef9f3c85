"""Shared by the reliability tests: running ``tame`` as a user does, and checking the one-line error contract."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

ERROR_LINE = re.compile(r"^tame(-inspect)?: error: \S.*$")
PROGRESS_BAR = re.compile(r"\d+%\|")  # tqdm's bars share stderr with the error; they are not part of it


def message_lines(err: str) -> list[str]:
    """stderr without progress bars, one entry per line."""
    return [line for line in re.split(r"[\r\n]+", err) if line.strip() and not PROGRESS_BAR.search(line)]


@dataclass
class CliResult:
    code: int  # exit status (minus the signal for a killed process)
    out: str
    err: str

    def assert_one_error_line(self, message: str = "") -> str:
        """Exit 2, stderr is exactly one ``tame: error: ...`` line (no traceback, no warning) matching ``message``."""
        lines = message_lines(self.err)
        assert self.code == 2, f"exit {self.code}, stderr:\n{self.err}"
        assert len(lines) == 1 and ERROR_LINE.match(lines[0]), f"not one error line:\n{self.err}"
        assert re.search(message, lines[0]), f"{message!r} not in {lines[0]!r}"
        return lines[0]


@pytest.fixture(scope="session")
def runner(tmp_path_factory):
    """One ``fault_runner.py serve`` process for the session: it forks every ``tame`` run of the tests below."""
    from fault_runner import Runner

    runner = Runner(tmp_path_factory.mktemp("runs"))
    yield runner
    runner.close()


@pytest.fixture
def cli(runner):
    """``cli(*argv)`` runs ``tame argv`` in a process of its own (forked by the runner) and returns what a user sees:
    the exit status, stdout and stderr (Python warnings and native libraries' messages included)."""

    def run(*argv) -> CliResult:
        return CliResult(*runner.run(list(argv)))

    return run


@pytest.fixture
def cli_here(capsys, monkeypatch):
    """``cli_here(*argv)`` runs ``tame argv`` in this process, under the test's monkeypatches."""
    from tame.cli import main

    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("WANDB_MODE", "disabled")

    def run(*argv) -> CliResult:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def reference_run(runner, data, tmp_path_factory):
    """The uninterrupted tiny run (``tame train`` with tests/train_helpers.py's overrides): its run folder."""
    from train_helpers import tiny_overrides

    out = tmp_path_factory.mktemp("reference")
    status, _, err = runner.run(["train", *tiny_overrides(data, out)])
    assert status == 0, err
    return out
