"""Checkpoints and weights whose numbers cannot be right are refused when loaded, naming the file and the tensor:
NaN/Inf in AM weights (every file format, every command that loads one, the resume path, optimizer state
included) and in classifier weights; an AM trained on another backbone (same channels) unless that is asked for.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import attention_of, one_thread, tiny_config, tiny_overrides  # noqa: F401

from tame.engine.train import train
from tame.errors import TameError
from tame.log import setup_logging
from tame.models import TameModel, create_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def run(reference_run, data, tmp_path_factory) -> Path:
    """A copy of the session's uninterrupted 2-epoch run (checkpoints step_4, epoch_1, step_8, step_10, epoch_2;
    tests/reliability/conftest.py) and its config file."""
    out = tmp_path_factory.mktemp("run")
    shutil.copytree(reference_run, out, dirs_exist_ok=True)
    (out / "cfg.yaml").write_text(yaml.safe_dump(asdict(tiny_config(data, out / "unused"))))
    return out


def poisoned(source: Path, target: Path, where: tuple, value: float = float("nan")) -> Path:
    """A copy of ``source`` with one element of the tensor at ``where`` (keys into the file's dict) set to ``value``."""
    state = torch.load(source, weights_only=True)
    node = state
    for key in where:
        node = node[key]
    node.view(-1)[0] = value
    torch.save(state, target)
    return target


def model(*extra: str) -> TameModel:
    cfg = tiny_config(Path("."), Path("."), *extra)
    return TameModel.from_config(cfg.model, input_size=32)


@pytest.fixture(scope="module")
def am_key(run) -> str:
    return next(k for k, v in attention_of(run / "epoch_2.pt").items() if v.dtype.is_floating_point)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize(
    "form", ["training-checkpoint", "attention-file", "original-snapshot", "bare-state-dict", "safetensors"]
)
def test_non_finite_am_weights_are_refused_naming_file_and_tensor(run, am_key, tmp_path, form, value):
    attention = attention_of(run / "epoch_2.pt")
    attention[am_key].view(-1)[3] = value
    path = tmp_path / ("am.safetensors" if form == "safetensors" else "am.pt")
    if form == "training-checkpoint":
        poisoned(run / "epoch_2.pt", path, ("attention", am_key), value)
    elif form == "attention-file":
        torch.save({"format": "tame-attention/1", "attention": attention, "meta": {}}, path)
    elif form == "original-snapshot":
        torch.save({"state_dict": {f"attn.{k}": v for k, v in attention.items()}}, path)
    elif form == "bare-state-dict":
        torch.save(attention, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in attention.items()}, str(path))
    with pytest.raises(
        TameError, match=rf"checkpoint {re.escape(str(path))}: tensor {re.escape(am_key)} holds 1 NaN/Inf"
    ):
        model().load_attention(path)


def test_eval_and_explain_stop_on_a_non_finite_checkpoint(cli_here, run, data, am_key, tmp_path):
    bad = poisoned(run / "epoch_2.pt", tmp_path / "epoch_2.pt", ("attention", am_key))
    common = ["--config", run / "cfg.yaml", "--checkpoint", bad]
    result = cli_here(
        "eval", *common, "--list", data / "val.txt", "--root", data, "--out", tmp_path / "eval", "--no-progress"
    )
    result.assert_one_error_line(rf"{re.escape(str(bad))}: tensor {re.escape(am_key)} holds 1 NaN/Inf value\(s\)")
    assert not (tmp_path / "eval").exists() or not list((tmp_path / "eval").glob("*.csv"))
    image = data / (data / "val.txt").read_text().split()[0]
    result = cli_here("explain", image, *common, "--out", tmp_path / "maps")
    result.assert_one_error_line(rf"tensor {re.escape(am_key)} holds")
    assert not (tmp_path / "maps").exists() or not any((tmp_path / "maps").iterdir())


def test_non_finite_classifier_weights_are_refused(tmp_path):
    net = create_classifier("test_resnet", pretrained=False, num_classes=3).net
    state = net.state_dict()
    key = next(k for k, v in state.items() if v.dtype.is_floating_point and k.endswith("running_var"))
    state[key][0] = float("inf")
    torch.save({"state_dict": state}, tmp_path / "weights.pth")
    with pytest.raises(TameError, match=rf"weights file .*weights\.pth: tensor {re.escape(key)} holds 1 NaN/Inf"):
        create_classifier("test_resnet", pretrained=False, num_classes=3, weights=tmp_path / "weights.pth")


@pytest.mark.parametrize(
    "where",
    [("attention", None), ("optimizer", "state", 0, "momentum_buffer")],
    ids=["attention", "optimizer-momentum"],
)
def test_resume_from_a_non_finite_checkpoint(cli_here, run, data, tmp_path, am_key, where):
    where = tuple(am_key if k is None else k for k in where)
    folder = tmp_path / "run"
    folder.mkdir()
    bad = poisoned(run / "step_10.pt", folder / "step_10.pt", where)
    result = cli_here("train", *tiny_overrides(data, tmp_path / "other", f"train.resume={bad}"))
    name = re.escape(".".join(str(k) for k in where))
    result.assert_one_error_line(rf"{re.escape(str(bad))}: tensor {name} holds 1 NaN/Inf .*cannot resume from it")
    assert not (tmp_path / "other").exists() or not list((tmp_path / "other").glob("*.pt"))


def test_auto_resume_skips_a_non_finite_newest_checkpoint(run, data, tmp_path, capsys):
    """Like a corrupt file: a warning naming the tensor, then the previous checkpoint; the same final weights."""
    folder = tmp_path / "run"
    folder.mkdir()
    for name in ("step_4.pt", "epoch_1.pt", "step_8.pt"):
        (folder / name).write_bytes((run / name).read_bytes())
    poisoned(run / "step_10.pt", folder / "step_10.pt", ("optimizer", "state", 0, "momentum_buffer"), float("inf"))
    setup_logging()
    train(tiny_config(data, folder))
    err = capsys.readouterr().err
    assert re.search(r"skipping checkpoint step_10\.pt: .*optimizer\.state\.0\.momentum_buffer holds 1 NaN/Inf", err)
    expected = attention_of(run / "epoch_2.pt")
    got = attention_of(folder / "epoch_2.pt")
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def with_model_name(source: Path, target: Path, name: str) -> Path:
    state = torch.load(source, weights_only=True)
    state["meta"]["model"] = name
    torch.save(state, target)
    return target


def test_a_checkpoint_of_another_backbone_is_refused_naming_both(run, tmp_path, cli_here, data):
    other = with_model_name(run / "epoch_2.pt", tmp_path / "resnet18_am.pt", "resnet18")
    with pytest.raises(
        TameError, match=r"trained on model 'resnet18', this model is 'test_resnet' .*allow_other_backbone"
    ):
        model().load_attention(other)
    args = ["--config", run / "cfg.yaml", "--checkpoint", other, "--list", data / "val.txt", "--root", data]
    result = cli_here("eval", *args, "--out", tmp_path / "eval", "--no-progress")
    result.assert_one_error_line(r"trained on model 'resnet18', this model is 'test_resnet'")


def test_a_deliberate_transfer_loads_with_a_warning(run, tmp_path, caplog):
    other = with_model_name(run / "epoch_2.pt", tmp_path / "resnet18_am.pt", "resnet18")
    expected = attention_of(run / "epoch_2.pt")
    for loaded in (model("model.allow_other_backbone=true"), model()):
        if loaded.allow_other_backbone:
            loaded.load_attention(other)  # the config key
        else:
            loaded.load_attention(other, allow_other_backbone=True)  # the API's argument
        assert all(torch.equal(expected[k], v) for k, v in loaded.attention.state_dict().items())
    assert "trained on resnet18, into test_resnet" in caplog.text


def test_original_snapshots_without_meta_load_as_before(run, tmp_path):
    attention = attention_of(run / "epoch_2.pt")
    torch.save({"state_dict": {f"attn.{k}": v for k, v in attention.items()}}, tmp_path / "snapshot.pt")
    model().load_attention(tmp_path / "snapshot.pt")


def test_token_transform_of_the_checkpoint_must_match(run, tmp_path):
    state = torch.load(run / "epoch_2.pt", weights_only=True)
    state["meta"]["token_transform"] = "class_weighted"
    torch.save(state, tmp_path / "vit_am.pt")
    with pytest.raises(TameError, match=r"trained with token_transform='class_weighted', this model uses 'drop'"):
        model().load_attention(tmp_path / "vit_am.pt")
