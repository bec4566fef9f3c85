"""``tame train --check``: every problem that would stop the run after torchrun started, found before, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from train_helpers import one_thread, tiny_overrides  # noqa: F401

from tame.cli import main
from tame.models import create_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


def check(data: Path, out: Path, capsys, *extra: str) -> tuple[int, str, list[str]]:
    """Run ``tame train --check`` with the tiny config; (exit status, stdout, the error lines of stderr)."""
    lists = [f"data.val_root={data}", f"data.val_list={data / 'val.txt'}", f"data.eval_list={data / 'val.txt'}"]
    run = out / "run"  # an output folder of its own: the test's other files would make tmp_path "someone else's"
    status = main(["train", "--check", *tiny_overrides(data, run), *lists, *extra])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, [line for line in captured.err.splitlines() if line.startswith("tame: error: ")]


def test_a_good_config_passes_with_a_summary(data, tmp_path, capsys):
    status, out, errors = check(data, tmp_path, capsys)
    assert status == 0 and errors == []
    assert "model      test_resnet: 3 classes, 32x32 crop of 36 (bilinear)" in out
    assert "layers     layer2 48x4x4, layer3 192x2x2, layer4 96x1x1" in out
    assert "attention  TAME: 50,403 parameters, maps 4x4" in out
    assert f"train      {data / 'train.txt'}: 48 images, 3 labels in 0..2" in out and "6 steps per epoch of 8" in out
    assert f"val        {data / 'val.txt'}: 6 images" in out and "config OK" in out


def test_every_misspelt_layer_is_one_line_with_its_suggestion(data, tmp_path, capsys):
    status, out, errors = check(data, tmp_path, capsys, "model.layers=[layer2,layr3,fc]")
    assert status == 2 and "config OK" not in out
    assert errors == [
        "tame: error: config key model.layers: unknown layer 'layr3' in test_resnet; closest: layer3, layer3.0, layer4",
        "tame: error: config key model.layers: layer 'fc' does not produce a feature map "
        "(`tame-inspect test_resnet` lists those that do)",
    ]


def test_an_unimportable_builder_is_one_line(data, tmp_path, capsys):
    status, _, errors = check(data, tmp_path, capsys, "model.name=bad_module:build")
    assert status == 2 and len(errors) == 1
    assert "cannot import bad_module (No module named 'bad_module')" in errors[0] and "PYTHONPATH=." in errors[0]


def test_a_builder_outside_the_path_needs_pythonpath(data, tmp_path, capsys, monkeypatch):
    """The newcomer's `module:function` in their own folder: refused until that folder is on the path."""
    (tmp_path / "my_models.py").write_text(
        "import timm\n\ndef build(pretrained=False, num_classes=1000):\n"
        "    return timm.create_model('test_resnet', pretrained=False, num_classes=num_classes)\n"
    )
    status, _, errors = check(data, tmp_path / "out", capsys, "model.name=my_models:build")
    assert status == 2 and "run from the folder that holds my_models with PYTHONPATH=." in errors[0]
    monkeypatch.syspath_prepend(str(tmp_path))
    status, out, errors = check(data, tmp_path / "out", capsys, "model.name=my_models:build")
    assert status == 0 and errors == [] and "model      my_models:build: 3 classes" in out


def test_a_missing_weights_file_is_named(data, tmp_path, capsys):
    status, _, errors = check(data, tmp_path, capsys, f"model.weights={tmp_path / 'nope.pth'}")
    assert status == 2 and errors == [
        f"tame: error: weights file {tmp_path / 'nope.pth'} not found (model.weights / --weights: the classifier's "
        "state dict)"
    ]


def test_weights_of_another_model_are_refused(data, tmp_path, capsys):
    path = tmp_path / "other.pth"
    torch.save(create_classifier("resnet10t", pretrained=False, num_classes=3).net.state_dict(), path)
    status, _, errors = check(data, tmp_path, capsys, f"model.weights={path}")
    assert status == 2 and len(errors) == 1 and "does not fit the model" in errors[0]


def test_labels_out_of_the_models_range(data, tmp_path, capsys):
    bad = tmp_path / "train.txt"
    bad.write_text((data / "train.txt").read_text() + "images/train/00000.jpg 7\n")
    args = (f"data.train_list={bad}", "train.label_source=list")
    status, _, errors = check(data, tmp_path, capsys, *args)
    assert status == 2 and len(errors) == 1
    assert f"config key data.train_list: {bad}:49: images/train/00000.jpg: label 7 is out of range 0..2" in errors[0]
    # labels the training does not read (label_source=model) do not stop it
    assert check(data, tmp_path, capsys, f"data.train_list={bad}")[0] == 0


def test_validation_list_problems_are_errors_evaluation_list_problems_notes(data, tmp_path, capsys):
    bad = tmp_path / "val.txt"
    bad.write_text("images/nope.png 1\n")
    run = [*tiny_overrides(data, tmp_path / "run"), f"data.val_root={data}"]
    status = main(["train", "--check", *run, f"data.val_list={bad}"])
    err = capsys.readouterr().err
    assert status == 2 and "tame: error: " in err and "validation after every epoch reads it" in err
    status = main(["train", "--check", *run, f"data.eval_list={bad}"])
    captured = capsys.readouterr()
    assert status == 0 and "not checked" in captured.out and "`tame eval` reads it" in captured.out


def test_missing_root_and_too_small_a_list(data, tmp_path, capsys):
    status, _, errors = check(data, tmp_path, capsys, f"data.root={tmp_path / 'nowhere'}")
    assert status == 2 and len(errors) == 1
    assert errors[0].startswith(f"tame: error: config key data.root: image folder {tmp_path / 'nowhere'} not found")
    status, _, errors = check(data, tmp_path, capsys, "data.batch_size=64")
    assert status == 2 and "the training list has 48 images, fewer than one batch of 64" in errors[0]


def test_a_missing_training_file_is_found(data, tmp_path, capsys):
    listed = tmp_path / "train.txt"
    listed.write_text("images/gone.png 0\n" + (data / "train.txt").read_text())
    status, _, errors = check(data, tmp_path, capsys, f"data.train_list={listed}")
    assert status == 2 and f"{listed}:1: images/gone.png" in errors[0]
    assert check(data, tmp_path, capsys, f"data.train_list={listed}", "data.validate=none")[0] == 0
