"""The training engine on CPU: a tiny timm ResNet on synthetic data, a few steps per epoch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from train_helpers import attention_of, one_thread, tiny_config, tiny_overrides  # noqa: F401

from tame.checkpoint.format import load_checkpoint
from tame.cli import main
from tame.engine.train import isolated_rng, train
from tame.errors import TameError
from tame.log import setup_logging
from tame.models import TameModel

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def reference_run(data, tmp_path_factory) -> Path:
    """One uninterrupted 2-epoch run (6 steps per epoch), with tensorboard on."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("reference")
        train(tiny_config(data, out, "log.tensorboard=true"))
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)
    return out


def test_loss_goes_down_and_run_is_recorded(reference_run):
    record = json.loads((reference_run / "train_record.json").read_text())
    first, second = record["epochs"]
    assert (first["epoch"], first["step"], second["step"]) == (1, 6, 12)
    assert second["loss"] < first["loss"]
    assert record["steps"][-1]["step"] == 12 and record["steps"][-1]["images_per_s"] > 0
    assert (reference_run / "loss_curve.png").stat().st_size > 0
    assert any((reference_run / "tensorboard").iterdir())
    saved = yaml.safe_load((reference_run / "config.yaml").read_text())
    assert saved["train"]["max_lr"] == 1e-2 and saved["model"]["name"] == "test_resnet"


def test_checkpoints_are_plain_tensors_and_pruned(reference_run):
    names = sorted(p.name for p in reference_run.glob("*.pt"))
    assert names == ["epoch_1.pt", "epoch_2.pt", "step_10.pt", "step_4.pt", "step_8.pt"]  # newest 3 step files
    state = torch.load(reference_run / "epoch_2.pt", weights_only=True)
    for key in ("attention", "optimizer", "scheduler", "scaler", "rng", "config", "meta"):
        assert key in state
    assert (state["epoch"], state["step"], state["steps_per_epoch"]) == (2, 12, 6)
    assert state["rng"]["torch"].dtype == torch.uint8 and state["rng"]["torch"].shape[0] == 1
    assert state["meta"]["layers"] == ["layer2", "layer3", "layer4"]
    weights, biases = state["optimizer"]["param_groups"]
    assert (weights["weight_decay"], biases["weight_decay"]) == (5e-4, 0.0)
    assert biases["max_lr"] == pytest.approx(2 * weights["max_lr"]) and weights["max_lr"] == pytest.approx(1e-2)
    assert state["scheduler"]["total_steps"] == 12
    cfg = tiny_config(Path("."), Path("."))
    model = TameModel.from_config(cfg.model, input_size=32)
    model.load_attention(reference_run / "epoch_2.pt")  # the evaluation and explain commands read these files


def test_killed_mid_epoch_resumes_to_the_same_weights(data, reference_run, tmp_path, monkeypatch):
    cfg = tiny_config(data, tmp_path)
    original = TameModel.training_step
    calls = []

    def dies_at_step_9(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 9:  # epoch 2, batch 3; the newest checkpoint is step_8
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TameModel, "training_step", dies_at_step_9)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(TameModel, "training_step", original)
    assert not (tmp_path / "epoch_2.pt").exists() and (tmp_path / "step_8.pt").exists()
    train(cfg)
    expected, got = attention_of(reference_run / "epoch_2.pt"), attention_of(tmp_path / "epoch_2.pt")
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    record = json.loads((tmp_path / "train_record.json").read_text())
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]


def test_corrupt_newest_checkpoint_falls_back_with_a_warning(data, reference_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    newest = run / "epoch_2.pt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a half-written file
    setup_logging()  # warnings to stderr, as the CLI sets it up (under pytest, Python's last resort is not used)
    train(tiny_config(data, run))
    err = capsys.readouterr().err
    assert "skipping checkpoint epoch_2.pt" in err
    expected, got = attention_of(reference_run / "epoch_2.pt"), attention_of(newest)  # redone from step_10
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_nan_loss_stops_with_step_and_last_good_checkpoint(data, tmp_path, monkeypatch):
    original = TameModel.training_step
    calls = []

    def nan_at_step_5(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 5:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(TameModel, "training_step", nan_at_step_5)
    with pytest.raises(TameError, match=r"non-finite loss at step 5 .*last good checkpoint is .*step_4\.pt"):
        train(tiny_config(data, tmp_path))
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["step_2.pt", "step_4.pt"]
    state = load_checkpoint(tmp_path / "step_4.pt")
    assert state["step"] == 4 and all(torch.isfinite(v.float()).all() for v in state["attention"].values())


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_fp16_overflow_is_skipped_by_the_grad_scaler(data, tmp_path, monkeypatch):
    scaler_class = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda *a, **k: scaler_class(*a, init_scale=2.0**127, **k))
    train(tiny_config(data, tmp_path, "train.amp=fp16", "train.epochs=1", "train.max_steps_per_epoch=3"))
    state = load_checkpoint(tmp_path / "epoch_1.pt")
    assert state["scaler"]["scale"] < 2.0**127  # overflowing steps were skipped and the scale reduced
    assert all(torch.isfinite(v.float()).all() for v in state["attention"].values())


def test_resume_none_refuses_to_mix_runs(data, reference_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    with pytest.raises(TameError, match="holds checkpoints of an earlier run"):
        train(tiny_config(data, run, "train.resume=none"))


def test_torchrun_two_processes_match_one_process(data, reference_run, tmp_path):
    """gloo, 2 x batch 4 == 1 x batch 8: BatchNorm synchronised, labels gathered for the 'batch' regulariser."""
    config = tmp_path / "tiny.yaml"
    cfg = tiny_config(data, tmp_path / "run")
    config.write_text(yaml.safe_dump(asdict(cfg)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "tame.cli",
        "train",
        "--config",
        str(config),
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = torch.load(tmp_path / "run" / "epoch_2.pt", weights_only=True)
    assert state["world_size"] == 2 and state["rng"]["torch"].shape[0] == 2
    expected = attention_of(reference_run / "epoch_2.pt")
    for key, value in state["attention"].items():
        torch.testing.assert_close(value, expected[key], atol=1e-5, rtol=0, msg=key)


@pytest.mark.gpu
def test_two_gpus_match_one_gpu(data, tmp_path):
    """nccl, 2 x batch 4 == 1 x batch 8 on CUDA: torch's SyncBatchNorm in the AM, DDP without buffer broadcasts
    (tame.distributed.parallel). The tolerance is float32 on a GPU (cuDNN's reductions are not bitwise stable)."""
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 CUDA devices (nccl gives each rank its own GPU)")
    one = train(tiny_config(data, tmp_path / "one", "train.device=cuda"))
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(asdict(tiny_config(data, tmp_path / "two", "train.device=cuda"))))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "tame.cli", "train", "--config", str(config)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = attention_of(one / "epoch_2.pt")
    for key, value in attention_of(tmp_path / "two" / "epoch_2.pt").items():
        torch.testing.assert_close(value, expected[key], atol=1e-4, rtol=1e-4, msg=key)


def test_cli_fails_before_work_naming_the_key(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TAME_DATA", raising=False)
    assert main(["train", "--config", str(REPO / "configs" / "resnet50.yaml")]) == 2
    err = capsys.readouterr().err
    assert "data.root" in err and "TAME_DATA" in err
    monkeypatch.setenv("TAME_DATA", str(tmp_path))
    assert main(["train", "--config", str(REPO / "configs" / "resnet50.yaml")]) == 2
    assert f"{tmp_path}/ILSVRC2012_img_train not found" in capsys.readouterr().err
    assert main(["train", "--config", str(REPO / "configs" / "synthetic.yaml"), "train.max_lr=-1"]) == 2
    assert "train.max_lr" in capsys.readouterr().err


def test_cli_check_validates_batch_split(data, tmp_path, capsys):
    args = ["train", "--check", *tiny_overrides(data, tmp_path)]
    assert main([*args, "--nproc", "2"]) == 0
    assert main([*args, "--nproc", "3"]) == 2
    assert "data.batch_size" in capsys.readouterr().err


def test_loader_draws_do_not_move_the_training_rng():
    """torch's DataLoader seeds its workers from the global RNG at every epoch; the training stream must not see it."""

    def drawing_loader():
        for batch in range(3):
            torch.rand(1)
            yield batch

    torch.manual_seed(0)
    before = torch.get_rng_state()
    assert list(isolated_rng(drawing_loader())) == [0, 1, 2]
    assert torch.equal(torch.get_rng_state(), before)
