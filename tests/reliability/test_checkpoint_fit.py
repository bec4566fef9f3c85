"""Checkpoints that do not fit, and a best.pt that vanished (third probe, issue 25 items 10, 11 and the resume part
of 22): AM weights stored as int32 were cast silently (AD 0.00 / IC 100.00); resuming another model's checkpoint
was refused with a steps-per-epoch reason; best.pt deleted mid-run was still announced and `tame runs` said
finished."""

from __future__ import annotations

import json

import pytest
import torch
from train_helpers import tiny_overrides

from tame.checkpoint.format import save_attention_file
from tame.errors import TameError
from tame.models import TameModel


@pytest.fixture
def model(tiny_classifier):
    return TameModel(tiny_classifier, ["layer2", "layer3", "layer4"], input_size=64)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.bool])
@pytest.mark.parametrize("form", ["attention-file", "bare-state-dict"])
def test_non_float_am_weights_are_refused(model, tmp_path, dtype, form):
    state = {k: (v * 100).to(dtype) if v.is_floating_point() else v for k, v in model.attention.state_dict().items()}
    if form == "attention-file":
        save_attention_file(tmp_path / "am.pt", state, model.attention_meta())
    else:
        torch.save(state, tmp_path / "am.pt")
    kind = str(dtype).removeprefix("torch.")
    with pytest.raises(TameError, match=rf"am\.pt does not fit the model: non-float weights \S+ is {kind}"):
        model.load_attention(tmp_path / "am.pt")


def test_one_int_tensor_among_floats_is_named(model, tmp_path):
    state = model.attention.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].round().to(torch.int32)
    torch.save(state, tmp_path / "am.pt")
    with pytest.raises(TameError, match=rf"non-float weights {name} is int32"):
        model.load_attention(tmp_path / "am.pt")


def test_int_weights_through_eval_are_one_line(cli_here, model, tmp_path):
    state = {k: v.to(torch.int32) if v.is_floating_point() else v for k, v in model.attention.state_dict().items()}
    save_attention_file(tmp_path / "am.pt", state, model.attention_meta())
    (tmp_path / "c.yaml").write_text("model: {name: test_resnet, pretrained: false}\ndata: {resize: 72, crop: 64}\n")
    result = cli_here("explain", tmp_path, "--config", tmp_path / "c.yaml", "--checkpoint", tmp_path / "am.pt")
    result.assert_one_error_line(r"non-float weights .* is int32")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (["model.layers=[layer2, layer3]"], r"was trained with layers=\[.layer2., .layer3., .layer4.\], this model"),
        (["model.version=Noskipconnection"], r"was trained with version='TAME', this model uses 'Noskipconnection'"),
    ],
    ids=["other-layers", "other-version"],
)
def test_resuming_another_models_checkpoint_names_the_model_not_the_steps(
    cli_here, data, reference_run, tmp_path, changes, message
):
    """The other model's run also has another batch size (other steps per epoch): the model is the reason given."""
    resume = f"train.resume={reference_run / 'epoch_1.pt'}"
    result = cli_here("train", *tiny_overrides(data, tmp_path, resume, "data.batch_size=4", *changes))
    result.assert_one_error_line(message)
    assert not list(tmp_path.glob("*.pt"))


def test_only_the_batch_changed_still_names_the_steps(cli_here, data, reference_run, tmp_path):
    resume = f"train.resume={reference_run / 'epoch_1.pt'}"
    result = cli_here("train", *tiny_overrides(data, tmp_path, resume, "data.batch_size=4"))
    result.assert_one_error_line(r"written with 6 steps per epoch, this run has 12")


@pytest.mark.parametrize("removed", [["best.pt"], ["best.pt", "epoch_1.pt"]], ids=["best", "best-and-epoch-1"])
def test_best_pt_removed_mid_run_is_restored_or_reported(runner, cli_here, data, tmp_path, removed):
    val = [f"data.val_list={data / 'val.txt'}", f"data.val_root={data}", "train.epochs=3"]
    argv = ["train", *tiny_overrides(data, tmp_path, *val)]
    fault = {"kind": "remove", "at": 8, "paths": [str(tmp_path / name) for name in removed]}  # during epoch 2
    status, out, err = runner.run(argv, fault)
    assert status == 0, err
    best = json.loads((tmp_path / "train_record.json").read_text())["best"]["epoch"]
    exists = (tmp_path / "best.pt").is_file()
    assert exists == (best != 1 or "epoch_1.pt" not in removed)  # made again from the best epoch's checkpoint
    if exists:
        assert (tmp_path / "best.pt").read_bytes() == (tmp_path / f"epoch_{best}.pt").read_bytes()
        assert f"-> {tmp_path / 'best.pt'}" in out + err
    else:
        assert "but best.pt is missing" in err and f"-> {tmp_path / 'best.pt'}" not in out + err
    row = cli_here("runs", tmp_path).out.splitlines()[1]
    assert row.endswith("finished" if exists else "finished, best.pt missing"), row
