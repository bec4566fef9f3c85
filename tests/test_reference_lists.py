"""The reference's own validation and evaluation split ship in datalist/ILSVRC, byte-identical and well-formed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tame.data import read_list

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "reference-lists"


@pytest.mark.parametrize("name", ["Validation_2000.txt", "Evaluation_2000.txt"])
def test_reference_list_is_in_the_repository(name):
    ours = ROOT / "datalist" / "ILSVRC" / name
    entries = read_list(ours)
    assert len(entries) == 2000
    assert all(0 <= e.label < 1000 for e in entries)
    if SHARED.is_dir():
        assert ours.read_bytes() == (SHARED / name).read_bytes()


def test_the_two_splits_are_disjoint():
    folder = ROOT / "datalist" / "ILSVRC"
    validation = {e.path for e in read_list(folder / "Validation_2000.txt")}
    evaluation = {e.path for e in read_list(folder / "Evaluation_2000.txt")}
    assert not validation & evaluation
