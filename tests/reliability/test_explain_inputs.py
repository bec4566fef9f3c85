"""Folders given to `tame explain` that broke it (third probe, issue 25 items 13, 14, 21): a symlink loop inside
(RuntimeError, nothing written), a file name that is not UTF-8 (maps written, then UnicodeEncodeError and no
gallery), folders reached through a symlink (skipped without a word). Each now explains what it can, lists the
rest as skipped and writes the gallery."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

CONFIG = """model:
  name: test_resnet
  pretrained: false
  layers: [layer2, layer3]
data:
  resize: 36
  crop: 32
"""


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    from tame.models import TameModel, create_classifier

    folder = tmp_path_factory.mktemp("explain_inputs")
    torch.manual_seed(0)
    classifier = create_classifier("test_resnet", pretrained=False)
    torch.save(classifier.net.state_dict(), folder / "classifier.pth")
    (folder / "config.yaml").write_text(CONFIG.replace("pretrained: false", f"weights: {folder / 'classifier.pth'}"))
    TameModel(classifier, ["layer2", "layer3"], input_size=32).save_attention(folder / "am.pt")
    return folder


def _image(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (36, 40, 3), dtype=np.uint8)).save(path)


def _explain(cli_here, model_files, out, *paths):
    args = ["--config", model_files / "config.yaml", "--checkpoint", model_files / "am.pt", "--out", out]
    return cli_here("explain", *paths, *args)


def test_symlink_loops_and_broken_links_are_skipped(cli_here, model_files, tmp_path):
    photos = tmp_path / "photos"
    _image(photos / "good.jpg")
    (photos / "self.jpg").symlink_to("self.jpg")
    (photos / "a.png").symlink_to("b.png")
    (photos / "b.png").symlink_to("a.png")
    (photos / "gone.jpg").symlink_to("nowhere.jpg")
    (photos / "up").symlink_to("..")  # a folder cycle: photos/up/photos/up/...
    (photos / "here").symlink_to(".")
    result = _explain(cli_here, model_files, tmp_path / "out", photos)
    assert result.code == 0, result.err
    assert "explained 1 images (1 maps), skipped" in result.out and "Traceback" not in result.err
    for name in ("self.jpg", "a.png", "b.png", "gone.jpg"):
        assert f"skipped {photos / name}: a broken symlink or a symlink loop" in result.out
    assert f"skipped {photos / 'here'}: a folder already read" in result.out
    assert (tmp_path / "out" / "index.html").is_file()


def test_a_loop_given_directly_is_skipped(cli_here, model_files, tmp_path):
    _image(tmp_path / "good.jpg")
    (tmp_path / "loop.jpg").symlink_to("loop.jpg")
    result = _explain(cli_here, model_files, tmp_path / "out", tmp_path / "good.jpg", tmp_path / "loop.jpg")
    assert result.code == 0 and f"skipped {tmp_path / 'loop.jpg'}: a broken symlink or a symlink loop" in result.out


@pytest.mark.parametrize("where", ["top", "subfolder"])
def test_file_names_that_are_not_utf8_get_maps_and_a_gallery(cli_here, model_files, tmp_path, where):
    photos = tmp_path / "photos"
    _image(photos / "plain.jpg")
    raw = b"caf\xe9.jpg" if where == "top" else b"d\xfcr/x\xff.jpg"
    _image(photos / os.fsdecode(raw), seed=1)
    (photos / os.fsdecode(b"notes\xe9.txt")).write_text("not an image")
    out = tmp_path / "out"
    result = _explain(cli_here, model_files, out, photos)
    assert result.code == 0, result.err
    assert "explained 2 images (2 maps), skipped 1" in result.out and "notes\ufffd.txt: not an image" in result.out
    page = (out / "index.html").read_bytes().decode("utf-8")  # valid UTF-8
    record = json.loads((out / "explanations.json").read_text())
    odd = next(entry for entry in record["maps"] if entry["image"] != str(photos / "plain.jpg"))
    assert os.fsencode(odd["image"]) == os.fsencode(photos) + b"/" + raw
    assert (out / odd["map"]).is_file() and ("%E9" in page if where == "top" else "%FF" in page)


def test_folders_reached_through_a_symlink_are_read(cli_here, model_files, tmp_path):
    _image(tmp_path / "elsewhere" / "far.jpg")
    _image(tmp_path / "photos" / "near.jpg", seed=1)
    (tmp_path / "photos" / "more").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "link-to-photos").symlink_to(tmp_path / "photos")
    for given in ("photos", "link-to-photos"):
        result = _explain(cli_here, model_files, tmp_path / f"out-{given}", tmp_path / given)
        assert result.code == 0 and "explained 2 images (2 maps), skipped 0" in result.out, result.out + result.err
        assert list((tmp_path / f"out-{given}" / "more").glob("far_class*.npy"))
