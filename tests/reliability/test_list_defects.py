"""List-file defects found by the second probe: each is one clear line (or one bad line reported), never a
traceback, a wrong 'file not found', or 'all good'."""

from __future__ import annotations

import os

import pytest

from tame.data.check import check_list
from tame.data.lists import parse_list, read_list
from tame.errors import TameError


def _write(tmp_path, data: bytes):
    path = tmp_path / "list.txt"
    path.write_bytes(data)
    return path


def test_byte_order_mark_on_line_one_is_ignored(tmp_path):
    entries = read_list(_write(tmp_path, "\ufeffa.jpg 3\nb.jpg 4\n".encode()))
    assert [e.path for e in entries] == ["a.jpg", "b.jpg"]


def test_nul_byte_in_a_path_is_a_bad_line(tmp_path):
    entries, problems = parse_list(_write(tmp_path, b"a\x00b.jpg 3\nc.jpg 1\n"))
    assert [e.path for e in entries] == ["c.jpg"]
    assert problems[0].kind == "path" and "control character" in problems[0].message


def test_huge_label_is_a_bad_line(tmp_path):
    _, problems = parse_list(_write(tmp_path, b"a.jpg 99999999999999999999999\n"))
    assert problems[0].kind == "label" and "not a plausible class index" in problems[0].message


def test_a_huge_malformed_line_is_not_echoed_whole(tmp_path):
    path = _write(tmp_path, b"x" * 20_000_000 + b" 1 2\n")
    with pytest.raises(TameError) as err:
        read_list(path)
    assert len(str(err.value)) < 600 and "20,000,005 characters" in str(err.value)


def test_a_fifo_is_not_called_missing(tmp_path):
    fifo = tmp_path / "list.txt"
    os.mkfifo(fifo)
    with pytest.raises(TameError, match="not a regular file"):
        read_list(fifo)


def test_an_empty_list_is_not_all_good(tmp_path):
    (tmp_path / "images").mkdir()
    report = check_list(_write(tmp_path, b"\n\n"), tmp_path / "images")
    assert not report.ok and "empty" in report.summary()


def test_an_extremely_elongated_image_is_skipped_before_decoding(tmp_path):
    from PIL import Image

    from tame.data.check import check_file
    from tame.data.images import DecodeError, eval_image

    path = tmp_path / "strip.png"
    Image.new("RGB", (30000, 1)).save(path)  # a tiny file whose resize to 256 px would take gigabytes
    with pytest.raises(DecodeError, match="too elongated"):
        eval_image(path, 72, 64, True, "bilinear")
    assert check_file(path, decode=True)[0] == "decode"
