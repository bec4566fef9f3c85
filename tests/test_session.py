"""The run session (tame/session.py) every entry point opens: the global batch refused by one rule where it does not
split over the processes (train, lr-find, eval, datalist predict: the same one line), and the process group ended
however the run ends."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as torch_dist
from train_helpers import make_training_data, one_thread, tiny_config, tiny_overrides  # noqa: F401

from tame import distributed
from tame.cli import main
from tame.config import save_config
from tame.data.loaders import per_rank_batch
from tame.distributed import Dist
from tame.errors import TameError
from tame.models.registry import build_classifier
from tame.session import run_session

pytestmark = pytest.mark.usefixtures("one_thread")
REFUSAL = "the global batch 8 does not split evenly over 3 processes; use a positive multiple of 3"


@pytest.fixture
def three_processes(monkeypatch) -> list[bool]:
    """This process as rank 0 of 3 (as torchrun would start it), without a real group; returns the cleanup calls."""
    ended: list[bool] = []
    monkeypatch.setattr(distributed, "setup", lambda device="auto", env=None: Dist(0, 3, 0, torch.device("cpu")))
    monkeypatch.setattr(distributed, "cleanup", lambda: ended.append(True))
    return ended


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_data(tmp_path_factory.mktemp("data"))


def _command(name: str, data, tmp_path) -> tuple[list[str], str]:
    """(arguments of ``tame NAME`` with a global batch of 8, the name its refusal gives the batch)."""
    overrides = tiny_overrides(data, tmp_path / "run")
    if name in ("train", "lr-find"):
        return [name, *overrides], "config key data.batch_size"
    if name == "eval":
        config = tmp_path / "config.yaml"
        save_config(tiny_config(data, tmp_path / "run"), config)
        listed = ["--list", str(data / "val.txt"), "--root", str(data)]
        return ["eval", "--config", str(config), "--method", "random", *listed, "--batch-size", "8"], "--batch-size"
    model = ["--model", "test_resnet", "--no-pretrained", "--resize", "36", "--crop", "32", "--workers", "0"]
    out = ["-o", str(tmp_path / "predicted.txt")]
    return ["datalist", "predict", str(data / "val.txt"), "--root", str(data), *model, *out, "--batch-size", "8"], (
        "--batch-size"
    )


@pytest.mark.parametrize("name", ["train", "lr-find", "eval", "predict"])
def test_every_entry_point_refuses_a_global_batch_that_does_not_split(name, data, tmp_path, three_processes, capsys):
    args, source = _command(name, data, tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(f"error: {source}: {REFUSAL}"), err
    assert three_processes == [True]  # the session ended the process group it had started
    assert not (tmp_path / "run").exists() and not (tmp_path / "predicted.txt").exists()  # no work started


def test_per_rank_batch_splits_a_global_batch_or_refuses_it():
    assert per_rank_batch(8, 4) == 2 and per_rank_batch(8, 1) == 8
    with pytest.raises(TameError, match=f"^config key data.batch_size: {REFUSAL}$"):
        per_rank_batch(8, 3)
    with pytest.raises(TameError, match="^--batch-size: the global batch 0 does not split"):
        per_rank_batch(0, 1, "--batch-size")


def test_the_session_yields_the_run_and_the_local_batch(data, tmp_path, three_processes):
    cfg = tiny_config(data, tmp_path, "data.batch_size=12", "data.resize=null", "data.crop=null")
    with run_session(cfg, global_batch_size=6) as session:
        assert session.cfg.data.batch_size == 6 and session.local_batch_size == 2  # the option replaces the config's
        assert (session.cfg.data.resize, session.cfg.data.crop) == (None, None)  # no throwaway classifier to resolve
        resolved, classifier = build_classifier(session.cfg)  # the entry point's one classifier resolves them
        own = classifier.preprocessing
        assert (resolved.data.resize, resolved.data.crop) == (own.resize, own.crop)  # the model's own sizes
        assert None not in (own.resize, own.crop)
        assert session.output_dir == tmp_path and session.dist.world_size == 3
        assert three_processes == []
    assert three_processes == [True]


def test_the_session_ends_the_process_group_when_the_run_fails(data, tmp_path, monkeypatch):
    """A real (gloo, one process) group: gone after an error inside the session, the error passed on unchanged."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        failing = pytest.raises(RuntimeError, match="^the run failed$")
        with failing, run_session(tiny_config(data, tmp_path), device="cpu") as session:
            assert torch_dist.is_initialized() and session.dist.world_size == 1
            raise RuntimeError("the run failed")
        assert not torch_dist.is_initialized()
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
