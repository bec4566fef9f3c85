"""`tame explain` on the real images of tests/data (RGBA PNG, 469x500 and 138x150 JPEGs) with a tiny random model."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from train_helpers import TINY_MODEL_CONFIG as CONFIG

from tame.cli import main
from tame.data.images import eval_image
from tame.methods import create_explainer
from tame.models import TameModel, create_classifier
from tame.viz.overlay import save_comparison


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


def test_explain_writes_overlays_maps_and_gallery(run_dir, example_images, capsys):
    images = example_images
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


def test_explain_class_and_no_crop(run_dir, example_images):
    out = run_dir / "out"
    image = example_images / "162_166.JPEG"
    assert explain(run_dir, str(image), "--out", str(out), "--class", "7", "--no-crop") == 0
    assert (out / "162_166_class7.npy").is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--class", "5000"], "--class 5000 is out of range"),
        (["--layers", "layer3", "layer4"], "trained with layers="),
    ],
)
def test_explain_bad_input_is_one_line(run_dir, example_images, capsys, extra, message):
    code = explain(run_dir, str(example_images / "885.JPEG"), "--out", str(run_dir / "out"), *extra)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_nothing_readable_is_an_error(run_dir, capsys):
    (run_dir / "a.jpg").write_bytes(b"")
    code = explain(run_dir, str(run_dir / "a.jpg"), "--out", str(run_dir / "out"))
    assert code == 2 and "no readable images" in capsys.readouterr().err
    assert not (run_dir / "out").exists()


def test_comparison_figure_and_random_control(tiny_model, tmp_path):
    images = torch.rand(1, 3, 64, 64)
    maps = {}
    for method in ("tame", "gradcam", "random"):
        with create_explainer(method, tiny_model) as explainer:
            maps[method] = explainer.explain(images).maps[0]
    assert maps["random"].shape == (64, 64) and maps["random"].min() == 0 and maps["random"].max() == 1
    save_comparison(images[0], maps, tmp_path / "cmp.png", title="x", boxes=[[10, 10, 40, 40]])
    assert (tmp_path / "cmp.png").stat().st_size > 1000


def test_explain_images_is_the_typed_api_the_cli_calls(run_dir, example_images):
    """The library call (no argparse) gives the CLI's files; the maps are the model's explanations, bit for bit."""
    from tame.config import ExplainConfig
    from tame.data.images import eval_image
    from tame.explain.gallery import explain_images

    classifier = create_classifier("test_resnet", pretrained=False, preprocessing={"resize": 72, "crop": 64})
    model = TameModel(classifier, ["layer2", "layer3", "layer4"], input_size=64)
    model.load_attention(run_dir / "am.pt")
    model.eval()
    image = example_images / "162_166.JPEG"
    result = explain_images(model, [image, run_dir / "missing.jpg"], run_dir / "out", ExplainConfig(top_k=1))
    assert result.images == 1 and [str(p) for p, _ in result.skipped] == [str(run_dir / "missing.jpg")]
    entry = result.entries[0]
    expected = model.explain(eval_image(image, 72, 64, True, "bilinear")[None]).maps[0].numpy()
    assert np.array_equal(np.load(run_dir / "out" / entry["map"]), expected)
    written = sorted(p.name for p in (run_dir / "out").iterdir())
    assert written == sorted([entry["map"], entry["overlay"], "explanations.json", "index.html"])  # no temporaries


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_python_api_explains_with_the_models_own_preprocessing(run_dir, example_images, interpolation):
    """Issue 38: a 64 px model explained from Python without sizes ran at ImageNet's 256 / 224 bilinear (p = 0.93
    where the model's own transform gave 0.60). The model's resize, crop and interpolation are the default."""
    from tame.explain.gallery import explain_images

    torch.manual_seed(0)
    preprocessing = {"resize": 72, "crop": 64, "interpolation": interpolation}
    classifier = create_classifier("test_resnet", pretrained=False, preprocessing=preprocessing)
    model = TameModel(classifier, ["layer2", "layer3", "layer4"], input_size=64)
    model.load_attention(run_dir / "am.pt")
    model.eval()
    image = example_images / "162_166.JPEG"
    entry = explain_images(model, [image], run_dir / "out").entries[0]
    own = eval_image(image, 72, 64, True, interpolation)[None]
    with torch.no_grad():
        probability = model.predict(own).softmax(dim=1)[0, entry["class"]].item()
    assert np.load(run_dir / "out" / entry["map"]).shape == (64, 64)
    assert np.array_equal(np.load(run_dir / "out" / entry["map"]), model.explain(own).maps[0].numpy())
    assert entry["probability"] == pytest.approx(probability)


def test_flags_and_their_help_come_from_the_explain_section(capsys):
    """Every field of the config's explain section is a flag of `tame explain`, its help the field's; a flag
    given sets the section's key over the config file, one left out leaves the file's value."""
    from dataclasses import fields

    from tame.commands.explain import add_arguments
    from tame.commands.options import flag_values
    from tame.config import ExplainConfig, load_config

    parser = __import__("argparse").ArgumentParser()
    add_arguments(parser)
    text = parser.format_help()
    for item in fields(ExplainConfig):
        flag = item.metadata.get("flags", (f"--{item.name.replace('_', '-')}",))[0]
        assert flag in text and item.metadata["help"].split()[0] in text
    args = parser.parse_args(["x.jpg", "--top-k", "3", "--no-crop", "--methods", "gradcam", "rise"])
    values = flag_values(args, "explain")
    assert values == {"explain.top_k": 3, "explain.center_crop": False, "explain.methods": ["gradcam", "rise"]}
    config = load_config(None, ["explain.batch_size=4", "explain.top_k=2"], values)
    assert (config.explain.top_k, config.explain.batch_size, config.explain.center_crop) == (3, 4, False)


def test_validate_runs_once_per_command(run_dir, example_images, monkeypatch):
    """One `tame explain`: the config is validated once (it was twice: load_config, then build_classifier)."""
    import tame.config.tree as tree

    calls = []
    checks = tree.check_commands
    monkeypatch.setattr(tree, "check_commands", lambda config: calls.append(1) or checks(config))
    assert explain(run_dir, str(example_images / "885.JPEG"), "--out", str(run_dir / "out")) == 0
    assert len(calls) == 1


def test_config_overrides_go_among_the_paths(run_dir, example_images, monkeypatch):
    """`key=value` among the paths, as `tame eval`/`tame train` take them; an existing file of that shape is a path."""
    from tame.commands.explain import split_overrides

    image = example_images / "162_166.JPEG"
    out = run_dir / "out"
    assert explain(run_dir, "data.resize=56", str(image), "data.crop=48", "--out", str(out)) == 0
    entry = json.loads((out / "explanations.json").read_text())["maps"][0]
    assert np.load(out / entry["map"]).shape == (48, 48)
    monkeypatch.chdir(run_dir)
    (run_dir / "a=b.jpg").write_bytes(b"")
    paths, overrides = split_overrides(["x.jpg", "model.name=x", "a=b.jpg", "./c=d.jpg", "output_dir=o", "data.crop="])
    assert paths == ["x.jpg", "a=b.jpg", "./c=d.jpg"] and overrides == ["model.name=x", "output_dir=o", "data.crop="]


def test_a_bad_override_is_one_line(run_dir, example_images, capsys):
    out = run_dir / "out"
    code = explain(run_dir, str(example_images / "885.JPEG"), "data.crp=48", "--out", str(out))
    assert code == 2 and "unknown config key data.crp (did you mean data.crop?)" in capsys.readouterr().err
    assert not out.exists()


def fixed_classifier(run_dir):
    """The config names saved classifier weights, so that every run explains with the same classifier."""
    classifier = create_classifier("test_resnet", pretrained=False)
    torch.save(classifier.net.state_dict(), run_dir / "classifier.pth")
    (run_dir / "config.yaml").write_text(CONFIG.replace("pretrained: false", f"weights: {run_dir / 'classifier.pth'}"))
    return classifier.eval()


def test_methods_side_by_side_on_one_scale(run_dir, example_images, capsys):
    """`--methods tame gradcam`: each method's map and overlay, one comparison figure per image and class, and a
    gallery card that shows the figure and links every map; the tame maps are those of a tame-only run."""
    fixed_classifier(run_dir)
    image = str(example_images / "885.JPEG")
    out, alone = run_dir / "out", run_dir / "alone"
    assert explain(run_dir, image, "--methods", "tame", "gradcam", "--top-k", "2", "--out", str(out)) == 0
    assert "explained 1 images (4 maps)" in capsys.readouterr().out
    maps = json.loads((out / "explanations.json").read_text())["maps"]
    assert [(e["method"], e["rank"]) for e in maps] == [("tame", 1), ("gradcam", 1), ("tame", 2), ("gradcam", 2)]
    page = (out / "index.html").read_text()
    for tame, gradcam in (maps[:2], maps[2:]):
        k = tame["class"]
        assert gradcam["class"] == k and tame["comparison"] == gradcam["comparison"] == f"885_class{k}_methods.png"
        assert (out / tame["comparison"]).stat().st_size > 1000 and f'src="{tame["comparison"]}"' in page
        assert (gradcam["map"], gradcam["overlay"]) == (f"885_class{k}_gradcam.npy", f"885_class{k}_gradcam.png")
        for entry in (tame, gradcam):
            assert f'href="{entry["overlay"]}"' in page and f'href="{entry["map"]}"' in page
            assert np.load(out / entry["map"]).shape == (64, 64)
    assert "Grad-CAM" in page and page.count("<figure>") == 2
    assert explain(run_dir, image, "--top-k", "2", "--out", str(alone)) == 0
    for entry in maps[::2]:
        assert np.array_equal(np.load(out / entry["map"]), np.load(alone / entry["map"]))


def test_a_baseline_needs_no_checkpoint_and_takes_its_layer(run_dir, example_images):
    """`--method gradcam --layer layer3` without --checkpoint: the maps of create_explainer on the same classifier."""
    from tame.data.images import eval_image
    from tame.methods import create_explainer

    classifier = fixed_classifier(run_dir)
    image = example_images / "162_166.JPEG"
    out = run_dir / "out"
    argv = ["explain", str(image), "--config", str(run_dir / "config.yaml"), "--out", str(out)]
    assert main([*argv, "--method", "GradCAM", "--layer", "layer3"]) == 0
    entry = json.loads((out / "explanations.json").read_text())["maps"][0]
    assert entry["method"] == "gradcam" and entry["map"] == f"162_166_class{entry['class']}_gradcam.npy"
    with create_explainer("gradcam", classifier, layer="layer3") as explainer:
        expected = explainer.explain(eval_image(image, 72, 64, True, "bilinear")[None], entry["class"]).maps[0].numpy()
    assert np.array_equal(np.load(out / entry["map"]), expected)


def test_class_names_file_names_the_classes(run_dir, example_images):
    """model.class_names (`label name` lines) in the overlay titles, the gallery and explanations.json; RISE with
    its options, for a 4-class classifier (no ImageNet names)."""
    (run_dir / "names.txt").write_text("0 cat\n1 sea lion\n2 dog\n3 tree frog\n")
    out = run_dir / "out"
    image = str(example_images / "885.JPEG")
    argv = ["explain", image, "--config", str(run_dir / "config.yaml"), "--out", str(out), "--top-k", "4"]
    overrides = ["model.num_classes=4", f"model.class_names={run_dir / 'names.txt'}"]
    assert main([*argv, *overrides, "--method", "rise", "--num-masks", "8", "--mask-batch", "4"]) == 0
    maps = json.loads((out / "explanations.json").read_text())["maps"]
    names = {"cat": 0, "sea lion": 1, "dog": 2, "tree frog": 3}
    assert sorted(e["name"] for e in maps) == sorted(f"{name} ({k})" for name, k in names.items())
    assert all(e["method"] == "rise" and (out / e["overlay"]).is_file() for e in maps)
    assert "tree frog (3)" in (out / "index.html").read_text()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--batch-size", "0"], r"explain.batch_size \(--batch-size\): must be at least 1, got 0"),
        (["--batch-size", "-1"], r"explain.batch_size \(--batch-size\): must be at least 1, got -1"),
        (["--top-k", "0"], r"explain.top_k \(--top-k\): must be at least 1, got 0"),
        (["explain.top_k=0"], r"explain.top_k \(--top-k\): must be at least 1, got 0"),
        (["--class", "-3"], r"explain.class_index \(--class\): must not be negative"),
        (["--device", "cuda"], "no CUDA device is visible"),
        (["--method", "gradcom"], "unknown method 'gradcom'.*gradcam"),
        (["--layer", "layer3"], "--layer applies to .*gradcam.*, not to tame"),
        (["--methods", "gradcam", "--num-masks", "8"], "--num-masks applies to rise, not to gradcam"),
        (["--method", "gradcam", "--layer", "layer9"], "unknown target layer 'layer9'"),
        (["model.class_names=nowhere.txt"], "class names file not found: nowhere.txt"),
        (["--runtime", "onnx", "--method", "gradcam"], "runs the exported TAME graph"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(run_dir, example_images, capsys, monkeypatch, extra, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = run_dir / "out"
    code = explain(run_dir, str(example_images / "885.JPEG"), str(run_dir / "x.jpg"), "--out", str(out), *extra)
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("tame: warning:")]
    assert code == 2 and len(errors) == 1 and re.search(message, errors[0]), errors
    assert not out.exists()


def test_empty_path_and_bad_device_spelling_write_nothing(run_dir, example_images, capsys, monkeypatch):
    """`tame explain ""` would read the current folder: refused. `--device foo` is argparse's usage error."""
    monkeypatch.chdir(run_dir)
    out = run_dir / "out"
    assert explain(run_dir, "", "--out", str(out)) == 2
    assert "an empty path names no image (give . for the current folder)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        explain(run_dir, str(example_images / "885.JPEG"), "--out", str(out), "--device", "foo")
    err = capsys.readouterr().err.strip().splitlines()
    assert caught.value.code == 2 and "argument --device: device must be auto, cpu, cuda or cuda:N" in err[-1]
    assert not out.exists()


def test_tame_without_checkpoint(run_dir, example_images, capsys):
    image = str(example_images / "885.JPEG")
    assert main(["explain", image, "--config", str(run_dir / "config.yaml"), "--out", str(run_dir / "o")]) == 2
    assert "--checkpoint is required for method tame" in capsys.readouterr().err


def test_only_paths_and_overrides_may_follow_the_options(run_dir, example_images, capsys):
    """Paths after the options join the paths; an unknown option is still argparse's error (and so for commands
    without a list positional, e.g. `tame inspect`)."""
    image = str(example_images / "885.JPEG")
    with pytest.raises(SystemExit) as caught:
        explain(run_dir, image, "--out", str(run_dir / "out"), "--bogus", image)
    assert caught.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["inspect", "test_resnet", "--all", "extra"])
    assert "unrecognized arguments: extra" in capsys.readouterr().err
    assert not (run_dir / "out").exists()
