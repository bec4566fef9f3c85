"""Class names for any classifier: `model.class_names` files in both formats, their errors, ImageNet's default."""

from __future__ import annotations

import pytest

from tame.config import load_config
from tame.data.class_names import class_names, load_class_names
from tame.data.synthetic import make_synthetic
from tame.errors import TameError


def test_one_name_per_line(tmp_path):
    (tmp_path / "names.txt").write_text("cat\nsea lion\n  dog  \n\n\n")  # trailing blank lines are ignored
    assert load_class_names(tmp_path / "names.txt", 3) == ["cat", "sea lion", "dog"]


def test_label_name_lines_in_any_order(tmp_path):
    (tmp_path / "classes.txt").write_text("1 sea lion\n0 cat\n2 dog\n")
    assert load_class_names(tmp_path / "classes.txt", 3) == ["cat", "sea lion", "dog"]


def test_names_that_start_with_numbers_are_names(tmp_path):
    """`LABEL NAME` only when the labels are exactly 0..K-1: otherwise the lines are the names themselves."""
    (tmp_path / "names.txt").write_text("7 seas\n3 musketeers\n")
    assert load_class_names(tmp_path / "names.txt", 2) == ["7 seas", "3 musketeers"]


def test_the_synthetic_sets_classes_txt(tmp_path):
    make_synthetic(tmp_path / "synth", classes=3, train_per_class=1, val_per_class=1, size=32)
    assert load_class_names(tmp_path / "synth" / "classes.txt", 3) == ["circle", "square", "triangle"]


@pytest.mark.parametrize(
    ("text", "count", "message"),
    [
        (None, 3, "class names file not found: .*missing.txt"),
        ("a\nb\n", 3, r"2 class names, but the classifier has 3 classes"),
        ("a\n\nb\nc\n", 4, r"names.txt:2: empty line"),
        (b"caf\xe9\n", 1, "class names must be UTF-8"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, text, count, message):
    path = tmp_path / ("missing.txt" if text is None else "names.txt")
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(TameError, match=message) as caught:
        load_class_names(path, count)
    assert "\n" not in str(caught.value)


def test_defaults_and_the_config_key(tmp_path, monkeypatch):
    assert class_names(None, 1000)[0].startswith("tench") and class_names(None, 6) == []
    (tmp_path / "names.txt").write_text("a\nb\n")
    monkeypatch.setenv("NAMES_DIR", str(tmp_path))
    config = load_config(None, ["model.class_names=${NAMES_DIR}/names.txt"])
    assert class_names(config.model.class_names, 2) == ["a", "b"]
    assert load_config(None).model.class_names is None
