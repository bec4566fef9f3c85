"""The reference's own validation and evaluation split ship in datalist/ILSVRC, byte-identical and well-formed;
so does the full ImageNet val.txt the tests read (tests/data, xz-compressed)."""

from __future__ import annotations

import hashlib
import lzma
from pathlib import Path

import pytest

from tame.data import read_list

ROOT = Path(__file__).resolve().parents[1]
# SHA-256 of the reference lists as the project was given them (../shared/data/reference-lists, no longer read)
REFERENCE_SHA256 = {
    "Validation_2000.txt": "f2434b74c218bc2a1415385946c00f2e019736df222ea1d0c463978c5e56f6c9",
    "Evaluation_2000.txt": "fa82dd426af9b082e5eb824388387126a12196ff1e73196e1ff349b5998a6331",
    "val.txt": "4138c0cd92d2dffea9353a9339c9f352361b7c6c267d2ff989b366f154188257",
}


@pytest.mark.parametrize("name", ["Validation_2000.txt", "Evaluation_2000.txt"])
def test_reference_list_is_in_the_repository(name):
    ours = ROOT / "datalist" / "ILSVRC" / name
    entries = read_list(ours)
    assert len(entries) == 2000
    assert all(0 <= e.label < 1000 for e in entries)
    assert hashlib.sha256(ours.read_bytes()).hexdigest() == REFERENCE_SHA256[name]


def test_compressed_val_list_is_the_reference_val_txt():
    packed = Path(__file__).resolve().parent / "data" / "reference-lists" / "val.txt.xz"
    assert hashlib.sha256(lzma.decompress(packed.read_bytes())).hexdigest() == REFERENCE_SHA256["val.txt"]


def test_the_two_splits_are_disjoint():
    folder = ROOT / "datalist" / "ILSVRC"
    validation = {e.path for e in read_list(folder / "Validation_2000.txt")}
    evaluation = {e.path for e in read_list(folder / "Evaluation_2000.txt")}
    assert not validation & evaluation
