"""`tame compare --help` and `tame explain --help` name every family member (issue #40, point 5)."""

from __future__ import annotations

import pytest

from tame.cli import main

FAMILY = ("TAME", "T-TAME", "P-TAME", "L-CAM-Img")


@pytest.mark.parametrize("command", ["compare", "explain"])
def test_help_names_every_family_member(command: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split()).replace("L-CAM- Img", "L-CAM-Img")  # argparse's wrapping
    for member in FAMILY:
        assert f"{member}," in text or f"{member}:" in text or f"{member} " in text, member
    if command == "compare":
        assert "p-tame=snapshots/" in text
