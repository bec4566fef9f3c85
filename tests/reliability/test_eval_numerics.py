"""Evaluation numbers that must not lie: broken attention weights never give a (perfect-looking) AD/IC, and an
evaluation of a classifier without weights (``pretrained: false``) gives the same numbers every run."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import one_thread, tiny_config, tiny_overrides  # noqa: F401

from tame.models import TameModel

pytestmark = pytest.mark.usefixtures("one_thread")


def eval_overrides(data, tmp_path) -> list[str]:
    return [*tiny_overrides(data, tmp_path), f"data.val_root={data}", f"data.eval_list={data / 'val.txt'}"]


def broken_checkpoint(data, tmp_path, value: float):
    """An AM checkpoint whose every weight is ``value`` (NaN: a diverged run; 1e30: finite, but the maps overflow)."""
    cfg = tiny_config(data, tmp_path)
    model = TameModel.from_config(cfg.model, input_size=cfg.data.crop)
    with torch.no_grad():
        for parameter in model.attention.parameters():
            parameter.fill_(value)
    path = tmp_path / "am.pt"
    model.save_attention(path)
    return path


@pytest.mark.parametrize(
    ("value", "message"),
    [
        # a load-time check may refuse NaN weights before the metric loop sees them: either way one line
        (float("nan"), r"NaN|non-finite"),
        (1e30, r"am\.pt: 6 of 6 images got an explanation map with NaN or infinite values; no result is reported"),
    ],
    ids=["nan-weights", "overflowing-weights"],
)
def test_broken_weights_give_one_line_and_no_result(cli_here, data, tmp_path, value, message):
    config = write_config(tmp_path)
    checkpoint = broken_checkpoint(data, tmp_path, value)
    out = tmp_path / "eval"
    args = ["--checkpoint", checkpoint, "--out", out, "--no-progress", *eval_overrides(data, tmp_path)]
    result = cli_here("eval", "--config", config, *args)
    result.assert_one_error_line(message)
    assert not out.exists()  # nothing written


def write_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("model: {name: test_resnet}\n")
    return path


def test_eval_without_classifier_weights_is_reproducible(cli_here, data, tmp_path):
    """``pretrained: false`` and no weights: the classifier's random init comes from ``train.seed``, so two runs
    give the same numbers whatever the process's random state before them (here: deliberately different). The
    per-image Y (the class probability on the unmasked image) shows the classifier itself."""
    config = write_config(tmp_path)

    def run(name: str, ambient: int, *extra: str) -> tuple[dict, str]:
        torch.manual_seed(ambient)
        out = tmp_path / name
        args = ["--method", "random", "--out", out, "--per-image", out / "images.csv", "--no-progress"]
        assert cli_here("eval", "--config", config, *args, *eval_overrides(data, tmp_path), *extra).code == 0
        report = json.loads((out / "random_val.json").read_text())["results"][0]
        report.pop("ms_per_image")
        return report, (out / "images.csv").read_text()

    first, second = run("first", 1), run("second", 2)
    assert first == second
    seven = run("seed7", 1, "train.seed=7")
    assert seven[1] != first[1]  # the seed decides the classifier: its Y differ (so the comparison above can fail)
