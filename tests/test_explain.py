"""`tame explain` on the shared real images (RGBA PNG, 469x500 and 138x150 JPEGs) with a tiny random model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tame.baselines import create_explainer
from tame.cli import main
from tame.models import TameModel, create_classifier
from tame.viz.overlay import save_comparison

CONFIG = """model:
  name: test_resnet
  pretrained: false
  layers: [layer2, layer3, layer4]
data:
  resize: 72
  crop: 64
"""


def explain(run_dir, *args: str) -> int:
    """`tame explain ARGS` with the tiny model's config and checkpoint."""
    config = ["--config", str(run_dir / "config.yaml"), "--checkpoint", str(run_dir / "am.pt")]
    return main(["explain", *args, *config])


@pytest.fixture
def run_dir(tmp_path):
    torch.manual_seed(0)
    model = TameModel(create_classifier("test_resnet", pretrained=False), ["layer2", "layer3", "layer4"], input_size=64)
    model.save_attention(tmp_path / "am.pt")
    (tmp_path / "config.yaml").write_text(CONFIG)
    return tmp_path


def test_explain_writes_overlays_maps_and_gallery(run_dir, shared_data, capsys):
    images = shared_data / "images"
    (run_dir / "junk").mkdir()
    (run_dir / "junk" / "notes.JPEG").write_bytes(b"not an image at all")
    out = run_dir / "out"
    code = explain(run_dir, str(images), str(run_dir / "junk"), "--out", str(out), "--top-k", "2")
    assert code == 0
    printed = capsys.readouterr().out
    assert "skipped" in printed and "notes.JPEG" in printed
    record = json.loads((out / "explanations.json").read_text())
    assert len(record["maps"]) == 2 * 10 and len(record["skipped"]) == 1
    for entry in record["maps"]:
        explanation = np.load(out / entry["map"])
        assert explanation.shape == (64, 64) and explanation.min() >= 0 and explanation.max() <= 1
        assert (out / entry["overlay"]).stat().st_size > 1000
    page = (out / "index.html").read_text()
    assert "129_130.png" in page and "Skipped (1)" in page  # the RGBA PNG was explained
    assert any(e["image"].endswith("232.JPEG") for e in record["maps"])  # the 469x500 image


def test_explain_class_and_no_crop(run_dir, shared_data):
    out = run_dir / "out"
    image = shared_data / "images" / "162_166.JPEG"
    assert explain(run_dir, str(image), "--out", str(out), "--class", "7", "--no-crop") == 0
    assert (out / "162_166_class7.npy").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--class", "5000"], "--class 5000 is out of range"),
        (["--layers", "layer3", "layer4"], "trained with layers="),
    ],
)
def test_explain_bad_input_is_one_line(run_dir, shared_data, capsys, extra, message):
    code = explain(run_dir, str(shared_data / "images" / "885.JPEG"), "--out", str(run_dir / "out"), *extra)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_nothing_readable_is_an_error(run_dir, capsys):
    (run_dir / "a.jpg").write_bytes(b"")
    code = explain(run_dir, str(run_dir / "a.jpg"), "--out", str(run_dir / "out"))
    assert code == 2 and "no readable images" in capsys.readouterr().err


def test_comparison_figure_and_random_control(tiny_model, tmp_path):
    images = torch.rand(1, 3, 64, 64)
    maps = {}
    for method in ("tame", "gradcam", "random"):
        with create_explainer(method, tiny_model) as explainer:
            maps[method] = explainer.explain(images).maps[0]
    assert maps["random"].shape == (64, 64) and maps["random"].min() == 0 and maps["random"].max() == 1
    save_comparison(images[0], maps, tmp_path / "cmp.png", title="x", boxes=[[10, 10, 40, 40]])
    assert (tmp_path / "cmp.png").stat().st_size > 1000


def test_explain_images_is_the_typed_api_the_cli_calls(run_dir, shared_data):
    """The library call (no argparse) gives the CLI's files; the maps are the model's explanations, bit for bit."""
    from tame.data.images import eval_image
    from tame.explain import ExplainSpec, explain_images

    model = TameModel(create_classifier("test_resnet", pretrained=False), ["layer2", "layer3", "layer4"], input_size=64)
    model.load_attention(run_dir / "am.pt")
    model.eval()
    image = shared_data / "images" / "162_166.JPEG"
    result = explain_images(model, [image, run_dir / "missing.jpg"], run_dir / "out", ExplainSpec(resize=72, crop=64))
    assert result.images == 1 and [str(p) for p, _ in result.skipped] == [str(run_dir / "missing.jpg")]
    entry = result.entries[0]
    expected = model.explain(eval_image(image, 72, 64)[None]).maps[0].numpy()
    assert np.array_equal(np.load(run_dir / "out" / entry["map"]), expected)
    written = sorted(p.name for p in (run_dir / "out").iterdir())
    assert written == sorted([entry["map"], entry["overlay"], "explanations.json", "index.html"])  # no temporaries
