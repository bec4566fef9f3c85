"""The smaller defects of the third probe (issue 25 item 22): one image listed with two labels was "all good";
``--config /dev/zero`` said "not found"; an empty config waited ~50 s on download retries; ``${X}`` set but empty
made a path under ``/``; a gzipped checkpoint was called a code-execution risk. Each is one clear line now."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import time

import pytest
import torch

from tame.config import expand_path, load_config
from tame.data.check import check_list
from tame.data.lists import parse_list
from tame.errors import TameError
from tame.io import load_tensor_file


@pytest.mark.parametrize(
    ("second", "bad"),
    [("a.jpg 2", True), ("./a.jpg 2", True), ("sub/../a.jpg 1", True), ("a.jpg 0", False), ("b.jpg 2", False)],
    ids=["same-path", "dot-spelling", "dotdot-spelling", "same-label-twice", "another-image"],
)
def test_an_image_with_two_labels_is_a_bad_line(tmp_path, second, bad):
    (tmp_path / "list.txt").write_text(f"a.jpg 0\nc.jpg 1\n{second}\n")
    entries, problems = parse_list(tmp_path / "list.txt", one_label=True)
    assert len(parse_list(tmp_path / "list.txt")[0]) == 3  # labels not read (num_classes not given): not a problem
    if not bad:
        assert not problems and len(entries) == 3
        return
    assert [(p.line, p.kind) for p in problems] == [(3, "label")] and len(entries) == 2
    assert "but line 1 gives this image label 0" in problems[0].message


def test_labels_read_with_a_class_count_are_checked(tmp_path):
    (tmp_path / "list.txt").write_text("a.jpg 0\na.jpg 1\n")
    assert [p.line for p in parse_list(tmp_path / "list.txt", num_classes=3)[1]] == [2]


def test_datalist_check_reports_the_conflict(cli_here, tmp_path):
    from bad_inputs import write_jpeg

    (tmp_path / "images").mkdir()
    write_jpeg(tmp_path / "images" / "a.jpg")
    (tmp_path / "list.txt").write_text("a.jpg 0\na.jpg 1\n")
    assert not check_list(tmp_path / "list.txt", tmp_path / "images").ok
    result = cli_here("datalist", "check", tmp_path / "list.txt", "--root", tmp_path / "images", "--workers", 1)
    assert result.code == 1 and "list.txt:2: a.jpg: label 1, but line 1 gives this image label 0" in result.out


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
def test_a_config_that_is_not_a_regular_file_is_named_so(tmp_path, kind):
    path = {"device": "/dev/zero", "fifo": tmp_path / "fifo.yaml", "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    with pytest.raises(TameError, match=r"config file .*: not a regular file \(a folder, a FIFO or a device\)"):
        load_config(path)
    with pytest.raises(TameError, match=r"config file .*missing\.yaml: not found"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"], ids=["empty", "blank", "comment", "doc"])
def test_an_empty_config_is_refused_at_once(cli_here, tmp_path, text):
    (tmp_path / "config.yaml").write_text(text)
    started = time.monotonic()
    result = cli_here("train", "--config", tmp_path / "config.yaml")
    result.assert_one_error_line(r"config file .*config\.yaml is empty \(or only comments\)")
    assert time.monotonic() - started < 10  # was ~50 s of download retries for the default resnet50


@pytest.mark.parametrize(("value", "state"), [("", "set but empty"), (None, "not set")])
def test_an_empty_or_unset_variable_in_a_path_is_refused(monkeypatch, value, state):
    if value is None:
        monkeypatch.delenv("TAME_PROBE_DATA", raising=False)
    else:
        monkeypatch.setenv("TAME_PROBE_DATA", value)
    for spelling in ("${TAME_PROBE_DATA}/train.txt", "$TAME_PROBE_DATA/train.txt"):
        with pytest.raises(TameError, match=rf"data\.train_list: .* uses \$\{{TAME_PROBE_DATA\}}, which is {state}"):
            expand_path(spelling, "data.train_list")


def test_a_set_variable_still_expands(monkeypatch):
    monkeypatch.setenv("TAME_PROBE_DATA", "/data")
    assert str(expand_path("${TAME_PROBE_DATA}/train.txt", "data.train_list")) == "/data/train.txt"


COMPRESSORS = {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}


@pytest.mark.parametrize("kind", COMPRESSORS)
def test_a_compressed_checkpoint_is_named_as_such(tmp_path, kind):
    buffer = io.BytesIO()
    torch.save({"attention": {"w": torch.ones(2)}}, buffer)
    (tmp_path / "am.pt").write_bytes(COMPRESSORS[kind](buffer.getvalue()))
    with pytest.raises(TameError, match=rf"am\.pt: a {kind}-compressed file, not a tensor file; decompress it first"):
        load_tensor_file(tmp_path / "am.pt")


def test_a_gzipped_checkpoint_through_explain_is_one_line(cli_here, tmp_path):
    (tmp_path / "am.pt.gz").write_bytes(gzip.compress(b"\x80\x02not really a pickle"))
    config = "model: {name: test_resnet, pretrained: false}\ndata: {resize: 36, crop: 32}\n"
    (tmp_path / "config.yaml").write_text(config)
    result = cli_here("explain", tmp_path, "--config", tmp_path / "config.yaml", "--checkpoint", tmp_path / "am.pt.gz")
    result.assert_one_error_line(r"a gzip-compressed file, not a tensor file")
