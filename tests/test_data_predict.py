"""``tame datalist predict``: a list relabelled with the model's predictions, the same with 1 or 2 ranks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tame.cli import main
from tame.config import DataConfig
from tame.data import build_loader, read_list
from tame.data.predict import merge_shards, write_shard
from tame.data.synthetic import make_synthetic
from tame.distributed import Dist
from tame.errors import TameError
from tame.evaluation.predict import predict_shard

CPU = torch.device("cpu")
CFG = DataConfig(backend="torch", batch_size=4, workers=0, resize=72, crop=64, interpolation="bilinear")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("synth"), classes=3, train_per_class=1, val_per_class=3, size=64)


def _reference(model, synth):
    """Predictions of one process, image by image in list order."""
    loader = build_loader(CFG, synth.val_list, synth.root, train=False, dist=Dist.local(), global_batch_size=1)
    with torch.inference_mode():
        return [int(model(images).argmax()) for images, _ in loader]


def test_two_simulated_ranks_merge_in_list_order(tmp_path, synth, tiny_classifier):
    output = tmp_path / "predicted.txt"
    for rank in (0, 1):
        loader = build_loader(
            CFG,
            synth.val_list,
            synth.root,
            train=False,
            dist=Dist(rank=rank, world_size=2, local_rank=rank, device=CPU),
        )
        write_shard(output, rank, *predict_shard(tiny_classifier, loader))
    entries = read_list(synth.val_list)
    changed = merge_shards(output, entries, world_size=2)
    predicted = read_list(output)
    assert [entry.path for entry in predicted] == [entry.path for entry in entries]
    assert [entry.label for entry in predicted] == _reference(tiny_classifier, synth)
    assert changed == sum(a.label != b.label for a, b in zip(entries, predicted))
    assert not list(tmp_path.glob("predicted.txt.rank*"))


def test_missing_shard_is_an_error(tmp_path, synth):
    with pytest.raises(TameError, match="predictions of rank 1 are missing"):
        write_shard(tmp_path / "out.txt", 0, torch.arange(3).numpy(), torch.zeros(3, dtype=torch.int64).numpy())
        merge_shards(tmp_path / "out.txt", read_list(synth.val_list), world_size=2)


# the tiny random model and small sizes both predict tests run with
_TINY_MODEL = (
    *("--model", "test_resnet", "--no-pretrained"),
    *("--batch-size", "4", "--workers", "0", "--resize", "72", "--crop", "64"),
)


def test_cli_predict(tmp_path, synth, capsys):
    output = tmp_path / "predicted.txt"
    args = [
        "datalist",
        "predict",
        str(synth.val_list),
        "--root",
        str(synth.root),
        *_TINY_MODEL,
        "-o",
        str(output),
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(f"wrote {output}: 9 lines")
    assert len(read_list(output)) == 9


def test_torchrun_two_processes(tmp_path, synth):
    output = tmp_path / "predicted.txt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "tame.cli",
        "datalist",
        "predict",
        str(synth.val_list),
        "--root",
        str(synth.root),
        *_TINY_MODEL,
        "-o",
        str(output),
        "--backend",
        "dali",
        "--device",
        "cpu",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("wrote") == 1  # rank 0 only
    assert len(read_list(output)) == 9 and not list(tmp_path.glob("*.rank*"))
