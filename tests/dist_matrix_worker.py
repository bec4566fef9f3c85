"""One process of the process-count matrix (tests/test_dist_matrix.py): started by torchrun with N = 1, 2 or 3 CPU
processes (gloo), it runs every sharded command on the same uneven list and writes their outputs under OUT:

    python -m torch.distributed.run --standalone --nproc_per_node=N tests/dist_matrix_worker.py DATA OUT [RUN]

train (backbone_mode eval and train: the record, the checkpoints, best.pt, the dashboard images), eval (every
epoch, per-image rows), compare (every method, ROAD, pointing game, per-image and per-class rows, sanity checks),
lr-find and datalist predict with a random-weight classifier. eval and compare read the checkpoints of RUN (the
one-process launch's ``train_train``; default this launch's), so that they measure the evaluation's sharding alone:
the trainings' AMs agree to float32 rounding, which a HOG similarity of near-flat maps can magnify. All commands
share one process group (the session would start and end one per command; torchrun's store is set up once per
launch).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import yaml

import tame.distributed
from tame.cli import main
from tame.engine.run_log import RunLog

LIST_LENGTH = 17  # 17 = 2 * 6 + 5: no batch size of 6 and no process count of 2 or 3 divides it
BATCH = 6  # the global batch: 6, 3 or 2 images per rank


def tiny_config(data: Path, out: Path) -> Path:
    """A config for the tiny ResNet on the synthetic set: batch 6, uneven training, validation and evaluation lists."""
    lines = (data / "train.txt").read_text().splitlines()[:LIST_LENGTH]
    (out / "list.txt").write_text("\n".join(lines) + "\n")
    cfg = {
        "model": {
            "name": "test_resnet",
            "pretrained": False,
            "num_classes": 3,
            "layers": ["layer2", "layer3", "layer4"],
        },
        "data": {
            "root": str(data),
            "val_root": str(data),
            "train_list": str(out / "list.txt"),
            "val_list": str(out / "list.txt"),
            "eval_list": str(out / "list.txt"),
            "backend": "torch",
            "workers": 0,
            "batch_size": BATCH,
            "resize": 36,
            "crop": 32,
        },
        "train": {
            "epochs": 2,
            "max_lr": 1e-2,
            "deterministic": True,
            "checkpoint_every": 0,
            "select_by": "loss",
        },
        "log": {"wandb": "disabled", "tensorboard": False, "log_every": 1, "images_per_epoch": 4},
    }
    path = out / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def record_dashboard_images(out: Path) -> None:
    """Every image a dashboard would get (rank 0 only logs), saved as OUT/dashboard/<run>_<tag>_<step>.pt."""
    original = RunLog.explanations

    def explanations(self, step, images, maps, classes, tag="explanations"):
        if self.enabled:
            folder = out / "dashboard"
            folder.mkdir(exist_ok=True)
            name = f"{Path(self.output_dir).name}_{tag.replace('/', '-')}_{step}.pt"
            torch.save({"images": images.cpu(), "maps": maps.cpu(), "classes": classes.cpu()}, folder / name)
        return original(self, step, images, maps, classes, tag)

    RunLog.explanations = explanations


def run(*args: str) -> None:
    status = main([str(a) for a in args])
    if status != 0:
        raise SystemExit(f"tame {' '.join(map(str, args))}: exit {status}")


def commands(data: Path, out: Path, checkpoint: Path | None) -> None:
    config = tiny_config(data, out)
    for mode in ("eval", "train"):
        run("train", "--config", config, f"train.backbone_mode={mode}", f"output_dir={out / f'train_{mode}'}")
    checkpoint = checkpoint or out / "train_train"
    run("eval", "--config", config, "--checkpoint", checkpoint, "--out", out / "eval", "--per-image", out / "eval.csv")
    run(
        *("compare", "--config", config, "--checkpoint", checkpoint / "epoch_2.pt", "--out", out / "compare"),
        *("--road", "--boxes", data / "boxes.json", "--num-masks", "40", "--per-image", out / "compare_images.csv"),
        *("--per-class", "--sanity-checks", "8", "--no-progress"),
    )
    sweep = ("--out", out / "lr_find", "--start-lr", "1e-4", "--end-lr", "1")
    run("lr-find", "--config", config, *sweep, "train.backbone_mode=train")
    run(
        *("datalist", "predict", out / "list.txt", "--root", data, "--model", "test_resnet", "--no-pretrained"),
        *("-o", out / "predicted.txt", "--batch-size", BATCH, "--backend", "torch", "--workers", 0, "--device", "cpu"),
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    data_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    run_dir = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    out_dir.mkdir(parents=True, exist_ok=True)
    record_dashboard_images(out_dir)
    tame.distributed.cleanup = lambda: None  # the sessions share this launch's process group
    try:
        commands(data_dir, out_dir, run_dir)
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
