"""The synthetic shapes set: deterministic by seed, boxes and masks consistent with the images and lists."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tame.cli import main
from tame.data.check import check_list
from tame.data.synthetic import SHAPES, make_synthetic, render_sample
from tame.errors import TameError


def _files(root):
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    kwargs = {"classes": 3, "train_per_class": 2, "val_per_class": 1, "size": 48}
    make_synthetic(tmp_path / "a", seed=5, **kwargs)
    make_synthetic(tmp_path / "b", seed=5, **kwargs)
    make_synthetic(tmp_path / "c", seed=6, **kwargs)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a["images/train/00000.jpg"] != c["images/train/00000.jpg"]


def test_lists_boxes_and_masks_agree(tmp_path):
    made = make_synthetic(tmp_path, classes=4, train_per_class=3, val_per_class=2, size=64, seed=0)
    assert made.classes == SHAPES[:4]
    meta = json.loads(made.boxes.read_text())
    assert meta["classes"] == list(SHAPES[:4]) and meta["size"] == 64
    for list_file, count in ((made.train_list, 12), (made.val_list, 8)):
        report = check_list(list_file, made.root, num_classes=4, decode=True)
        assert report.ok and len(report.entries) == count
        assert [entry.label for entry in report.entries] == [i % 4 for i in range(count)]  # balanced prefixes
        for entry in report.entries:
            info = meta["images"][entry.path]
            assert info["label"] == entry.label
            mask = np.asarray(Image.open(made.root / info["mask"])) > 0
            ys, xs = np.nonzero(mask)
            assert info["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            assert 0.03 < mask.mean() < 0.5  # an object, not a speck nor the whole image
            with Image.open(made.root / entry.path) as image:
                assert image.size == (64, 64) and image.mode == "RGB"


def _dilate(mask, steps):
    for _ in range(steps):
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        mask = grown
    return mask


def test_object_stands_out_from_its_background():
    for label in range(len(SHAPES)):
        image, mask, _ = render_sample(np.random.default_rng([1, label]), label, 64)
        pixels = np.asarray(image, dtype=np.float32)
        around = _dilate(mask, 4) & ~_dilate(mask, 1)
        assert np.abs(pixels[mask].mean(axis=0) - pixels[around].mean(axis=0)).sum() > 60, SHAPES[label]


def test_bad_arguments():
    with pytest.raises(TameError, match="between 2 and 8"):
        make_synthetic("/nonexistent", classes=9)
    with pytest.raises(TameError, match="at least 32"):
        make_synthetic("/nonexistent", size=16)


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "synth"
    args = [
        "datalist",
        "synth",
        str(out),
        "--classes",
        "2",
        "--train-per-class",
        "2",
        "--val-per-class",
        "1",
        "--size",
        "32",
        "--seed",
        "3",
    ]
    assert main(args) == 0
    assert "classes: circle, square" in capsys.readouterr().out
    assert (out / "train.txt").read_text().splitlines() == [f"images/train/0000{i}.jpg {i % 2}" for i in range(4)]
    assert (out / "classes.txt").read_text() == "0 circle\n1 square\n"
