"""Configs are untrusted input: alias bombs, deep nesting, non-string keys and tab errors are one line each."""

from __future__ import annotations

import time

import pytest

from tame.config import load_config
from tame.errors import TameError

BOMB = b"""a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def _load(tmp_path, text: bytes, overrides=()):
    path = tmp_path / "config.yaml"
    path.write_bytes(text)
    return load_config(path, list(overrides))


def test_alias_bomb_is_refused_quickly(tmp_path):
    start = time.perf_counter()
    with pytest.raises(TameError, match=r"refused: more than \d+ aliases .* line \d+"):
        _load(tmp_path, BOMB)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize("where", ["file", "override"])
def test_deep_nesting_is_refused(tmp_path, where):
    deep = "[" * 3000 + "]" * 3000
    with pytest.raises(TameError, match="nested deeper than"):
        if where == "file":
            _load(tmp_path, f"train: {deep}\n".encode())
        else:
            _load(tmp_path, b"train: {epochs: 1}\n", [f"train.epochs={deep}"])


@pytest.mark.parametrize("key", ["1", "null", "yes", "3.5"])
def test_non_string_keys_are_one_line(tmp_path, key):
    with pytest.raises(TameError, match="keys must be names"):
        _load(tmp_path, f"train:\n  {key}: 2\n".encode())
    with pytest.raises(TameError, match="keys must be names"):
        _load(tmp_path, f"{key}: 2\n".encode())


def test_tab_error_names_the_line(tmp_path):
    with pytest.raises(TameError, match=r"not valid YAML \(.*line 2, column 1"):
        _load(tmp_path, b"train:\n\tepochs: 2\n")


def test_a_long_override_is_not_echoed_whole(tmp_path):
    with pytest.raises(TameError) as err:
        _load(tmp_path, b"train: {epochs: 1}\n", ["train.max_lr=[" + "1," * 1_000_000])
    assert len(str(err.value)) < 400


def test_ordinary_anchors_still_work(tmp_path):
    cfg = _load(tmp_path, b"model:\n  layers: &l [layer2, layer3]\ndata: {crop: 64, resize: 72}\n")
    assert cfg.model.layers == ["layer2", "layer3"]
