"""Every command's help works (``tame --help`` once crashed on an unescaped % in a help string)."""

from __future__ import annotations

import pytest

from tame.cli import COMMANDS, inspect_main, main


def _help(capsys, entry, argv) -> str:
    with pytest.raises(SystemExit) as done:
        entry(argv)
    assert done.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    text = _help(capsys, main, ["--help"])
    for name in COMMANDS:
        assert name in text


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help(capsys, command):
    text = _help(capsys, main, [command, "--help"])
    assert text.startswith("usage: tame " + command)


def test_inspect_help(capsys):
    assert _help(capsys, inspect_main, ["--help"]).startswith("usage: tame-inspect")


@pytest.mark.parametrize("action", ["check", "make", "predict", "synth"])
def test_datalist_action_help(capsys, action):
    assert _help(capsys, main, ["datalist", action, "--help"]).startswith(f"usage: tame datalist {action}")
