"""`tame explain`'s outputs (docs/RELIABILITY.md, "Explain outputs"): images that share a name never overwrite one
another's maps, the output folder is never read as input, an empty path is refused, and the ONNX Runtime path names
its files by the same rules."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from train_helpers import TINY_MODEL_CONFIG as CONFIG


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Path:
    """A tiny AM checkpoint, its config, and photos/ holding a/cat.jpg, a/cat.png, a/Cat.JPG, b/cat.jpg, dog.jpg
    (different random pictures, so that their maps differ)."""
    from tame.models import TameModel, create_classifier

    folder = tmp_path_factory.mktemp("explain_outputs")
    torch.manual_seed(0)
    classifier = create_classifier("test_resnet", pretrained=False)
    torch.save(classifier.net.state_dict(), folder / "classifier.pth")  # the same classifier in every run
    (folder / "config.yaml").write_text(CONFIG.replace("pretrained: false", f"weights: {folder / 'classifier.pth'}"))
    TameModel(classifier, ["layer2", "layer3", "layer4"], input_size=64).save_attention(folder / "am.pt")
    generator = np.random.default_rng(0)
    for name in ("a/cat.jpg", "a/cat.png", "a/Cat.JPG", "b/cat.jpg", "dog.jpg"):
        (folder / "photos" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(generator.integers(0, 256, (80, 90, 3), dtype=np.uint8)).save(folder / "photos" / name)
    return folder


def explain_args(setup: Path, *args) -> list:
    return ["explain", *args, "--config", setup / "config.yaml", "--checkpoint", setup / "am.pt"]


def written_maps(out: Path) -> set[str]:
    return {path.relative_to(out).as_posix() for path in out.rglob("*.npy")}


def test_images_that_share_a_name_keep_every_map(cli, setup, tmp_path):
    """Same stem in two folders, two suffixes, two letter cases, and a file named twice: one set of files each,
    named after the path inside the folder, and the count and gallery name only files that exist."""
    photos, out = setup / "photos", tmp_path / "out"
    result = cli(*explain_args(setup, photos, photos / "b" / "cat.jpg", "--out", out, "--top-k", "2"))
    assert result.code == 0, result.err
    assert "explained 5 images (10 maps), skipped 0" in result.out
    record = json.loads((out / "explanations.json").read_text())["maps"]
    stems = {Path(e["image"]).relative_to(photos).as_posix(): e["map"].rsplit("_class", 1)[0] for e in record}
    assert stems == {
        **{"a/Cat.JPG": "a/Cat.JPG", "a/cat.jpg": "a/cat.jpg-2", "a/cat.png": "a/cat.png"},
        **{"b/cat.jpg": "b/cat", "dog.jpg": "dog"},
    }
    assert written_maps(out) == {e["map"] for e in record} and len(record) == 10
    page = (out / "index.html").read_text()
    for entry in record:
        assert (out / entry["overlay"]).is_file() and f'href="{entry["map"]}"' in page
    by_image = {e["image"]: np.load(out / e["map"]) for e in record if e["rank"] == 1}
    assert len({array.tobytes() for array in by_image.values()}) == 5  # five different pictures, five maps


@pytest.mark.slow
def test_output_folder_inside_the_input_is_not_read(cli, setup, tmp_path):
    """--out inside the input folder: a second run explains the same 5 images, not the first run's overlays."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for image in (setup / "photos").rglob("*.*"):
        (photos / image.relative_to(setup / "photos")).parent.mkdir(exist_ok=True)
        (photos / image.relative_to(setup / "photos")).write_bytes(image.read_bytes())
    out = photos / "maps"
    for _ in range(2):
        result = cli(*explain_args(setup, photos, "--out", out))
        assert result.code == 0 and "explained 5 images (5 maps), skipped 0" in result.out, result.out + result.err
    assert len(written_maps(out)) == 5
    result = cli(*explain_args(setup, out, "--out", out))  # only the output folder: nothing to explain
    result.assert_one_error_line(r"no readable images among the given paths \(1 skipped; .*maps: the output folder")
    assert len(written_maps(out)) == 5


def test_empty_path_is_refused(cli, setup, tmp_path):
    result = cli(*explain_args(setup, "", "--out", tmp_path / "out"))
    result.assert_one_error_line(r"an empty path names no image \(give \. for the current folder\)")
    assert not (tmp_path / "out").exists()


def test_onnx_runtime_writes_the_same_names(cli_here, setup, tmp_path, monkeypatch):
    """explain_with_onnx (an ONNX Runtime stand-in that returns fixed maps) names and lists its files exactly as the
    PyTorch path does, through the same writer."""
    import tame.export.runtime as runtime

    def run_any_batch(feed, classes):
        count = len(feed)
        return np.zeros((count, 1000), np.float32), np.zeros(count, np.int64), np.full((count, 64, 64), 0.5, np.float32)

    meta = {"num_classes": 1000, "input_size": 64, "resize": 72, "input_dtype": "float"}
    fake = SimpleNamespace(format="onnx", meta=meta, run_any_batch=run_any_batch)
    monkeypatch.setattr(runtime, "open_exported", lambda path: fake)
    photos = [setup / "photos", setup / "photos" / "b" / "cat.jpg"]
    assert cli_here(*explain_args(setup, *photos, "--out", tmp_path / "torch", "--class", "3")).code == 0
    result = cli_here("explain", "--runtime", "onnx", "model.onnx", *photos, "--out", tmp_path / "onnx", "--class", 3)
    assert result.code == 0, result.err
    torch_maps = json.loads((tmp_path / "torch" / "explanations.json").read_text())["maps"]
    onnx_maps = json.loads((tmp_path / "onnx" / "explanations.json").read_text())["maps"]
    keys = ("image", "class", "overlay", "map", "method")
    assert [[e[k] for k in keys] for e in onnx_maps] == [[e[k] for k in keys] for e in torch_maps]
    assert written_maps(tmp_path / "onnx") == written_maps(tmp_path / "torch") and len(onnx_maps) == 5
