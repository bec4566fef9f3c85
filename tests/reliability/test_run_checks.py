"""Runs that trained on nonsense or that `tame train --check` passed and then failed (third probe, issue 25 items 6,
7 and 12): each is refused before the run, by `--check` and by `train` itself, in one line naming the key."""

from __future__ import annotations

import logging
import re

import pytest
from train_helpers import tiny_overrides

from tame.config import load_config
from tame.errors import TameError
from tame.models import TameModel


def _model(*overrides: str, crop: int = 32) -> TameModel:
    base = ["model.name=test_resnet", "model.pretrained=false", "model.num_classes=3", f"data.crop={crop}"]
    cfg = load_config(None, [*base, f"data.resize={crop}", *overrides])
    return TameModel.from_config(cfg.model, input_size=crop)


@pytest.mark.parametrize(
    ("layers", "crop", "shown"),
    [("[layer4]", 32, "1x1"), ("[layer4, layer2]", 32, "1x1"), ("[layer2]", 8, "1x1")],
    ids=["layer4-32px", "coarse-layer-first", "tiny-crop"],
)
def test_one_by_one_maps_are_refused(layers, crop, shown):
    with pytest.raises(TameError, match=rf"gives {shown} feature maps at {crop} px: .*at least 2x2.*model\.layers"):
        _model(f"model.layers={layers}", crop=crop)


def test_two_by_two_maps_are_a_warning_and_four_are_silent(caplog):
    with caplog.at_level(logging.WARNING):
        assert _model("model.layers=[layer3]").attention.size == (2, 2)
        assert "coarse explanations" in caplog.text
        caplog.clear()
        assert _model("model.layers=[layer2, layer3]").attention.size == (4, 4)
        assert not caplog.text


@pytest.mark.parametrize("value", ["0", "-1"])
def test_num_classes_below_one_is_refused(value):
    with pytest.raises(TameError, match=rf"config key model\.num_classes: must be at least 1, got {value}"):
        load_config(None, [f"model.num_classes={value}"])


@pytest.mark.parametrize("value", ["-1", "-5"])
def test_seed_out_of_range_is_refused(value):
    with pytest.raises(TameError, match=rf"config key train\.seed: must not be negative, got {value}"):
        load_config(None, [f"train.seed={value}"])


def _bad_settings(tmp_path):
    (tmp_path / "a-file").write_text("x")
    return {
        "1x1-maps": (["model.layers=[layer4]"], r"layer4 gives 1x1 feature maps"),
        "num-classes-0": (["model.num_classes=0"], r"model\.num_classes: must be at least 1"),
        "seed-minus-1": (["train.seed=-1"], r"train\.seed: must not be negative"),
        "missing-resume": ([f"train.resume={tmp_path}/nonexistent.pt"], r"train\.resume: checkpoint .* not found"),
        "output-under-proc": (["output_dir=/proc/tame-run"], r"output_dir: /proc/tame-run cannot be made in /proc"),
        "output-under-a-file": ([f"output_dir={tmp_path}/a-file/run"], r"cannot be made: .*a-file is a file"),
    }


BAD = ["1x1-maps", "num-classes-0", "seed-minus-1", "missing-resume", "output-under-proc", "output-under-a-file"]


@pytest.mark.parametrize("name", BAD)
def test_check_and_train_refuse_what_would_fail(cli_here, data, tmp_path, name):
    extra, message = _bad_settings(tmp_path)[name]
    overrides = tiny_overrides(data, tmp_path / "run", "train.epochs=1", *extra)
    checked = cli_here("train", "--check", *overrides)
    assert checked.code == 2 and "the run will start" not in checked.out, checked.out + checked.err
    assert any(re.search(message, line) for line in checked.err.splitlines()), checked.err  # a config error: alone
    trained = cli_here("train", *overrides)
    trained.assert_one_error_line(message)
    assert not (tmp_path / "run" / "epoch_1.pt").exists()
