"""Relabel a list with a classifier's own predictions (how the original TAME training lists were made).

Batched evaluation over the list (eval transform, list order), across GPUs when launched with torchrun: each rank
predicts its shard and writes ``OUT.rank<r>`` (``index label`` lines), then rank 0 merges the shards in list order
into ``OUT`` (paths as in the input list) and removes them. Images get the model's own preprocessing (sizes,
interpolation, mean/std: :mod:`tame.models.preprocessing`) unless the config or the options set them::

    tame datalist predict LIST --root DIR --model resnet50.tv_in1k -o OUT
    tame datalist predict LIST --root DIR --config configs/efficientnet_lite0.yaml -o OUT
    torchrun --nproc_per_node 4 -m tame.cli datalist predict LIST --root DIR --model resnet50.tv_in1k -o OUT
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tame.config import DataConfig, ModelConfig
from tame.data.lists import ListEntry, write_list
from tame.data.loaders import build_loader
from tame.data.sharding import Loader
from tame.errors import TameError
from tame.io import atomic_path


def shard_path(output: str | os.PathLike, rank: int) -> Path:
    return Path(f"{output}.rank{rank}")


@torch.inference_mode()
def predict_shard(model: torch.nn.Module, loader: Loader, progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """This rank's (list indices [n], predicted labels [n]) for an eval loader, padding dropped."""
    plan = loader.plan()
    indices, predictions = [], []
    for k, (images, _) in enumerate(tqdm(loader, desc="predict", unit="batch", disable=not progress)):
        rows = plan.batch(k)
        keep = ~plan.padding[rows]
        indices.append(plan.indices[rows][keep])
        predictions.append(model(images).argmax(dim=1).cpu().numpy()[keep])  # images [B, 3, H, W] -> [B]
    return np.concatenate(indices), np.concatenate(predictions)


def write_shard(output: str | os.PathLike, rank: int, indices: np.ndarray, predictions: np.ndarray) -> None:
    with atomic_path(shard_path(output, rank)) as tmp:
        np.savetxt(tmp, np.stack([indices, predictions], axis=1), fmt="%d")


def merge_shards(output: str | os.PathLike, entries: list[ListEntry], world_size: int) -> int:
    """Write ``output`` from the ranks' shards in list order, remove the shards; returns how many labels changed."""
    predicted = np.full(len(entries), -1, dtype=np.int64)
    for rank in range(world_size):
        path = shard_path(output, rank)
        if not path.is_file():
            raise TameError(f"{path}: the predictions of rank {rank} are missing (did that process fail?)")
        rows = np.loadtxt(path, dtype=np.int64, ndmin=2)
        predicted[rows[:, 0]] = rows[:, 1]
    if (predicted < 0).any():
        missing = int(np.flatnonzero(predicted < 0)[0])
        raise TameError(f"no prediction for line {entries[missing].line} ({entries[missing].path}); run predict again")
    write_list(output, [(entry.path, int(label)) for entry, label in zip(entries, predicted)])
    for rank in range(world_size):
        shard_path(output, rank).unlink()
    return int(sum(entry.label != label for entry, label in zip(entries, predicted)))


def predict_list(
    list_file: str | os.PathLike,
    root: str | os.PathLike,
    model_cfg: ModelConfig | str,
    output: str | os.PathLike,
    *,
    data_cfg: DataConfig,
    pretrained: bool = True,
    weights: str | None = None,
    device: str = "auto",
) -> str:
    """Predict every entry of ``list_file`` on this rank's shard and (rank 0) write ``output``; returns a summary.

    ``model_cfg``: a model name (with ``pretrained``/``weights``) or a config's ``model`` section (name, weights,
    mean/std); unset sizes in ``data_cfg`` (None) come from the model.
    """
    from tame.distributed import barrier, cleanup, setup

    if isinstance(model_cfg, str):
        model_cfg = ModelConfig(name=model_cfg, pretrained=pretrained, weights=weights)
    dist = setup(device)
    try:
        model = _classifier(model_cfg, data_cfg).to(dist.device)
        data_cfg = dataclasses.replace(
            data_cfg,
            resize=model.preprocessing.resize,
            crop=model.preprocessing.crop,
            interpolation=model.preprocessing.interpolation,
        )
        loader = build_loader(
            data_cfg, list_file, root, train=False, device=dist.device, rank=dist.rank, world_size=dist.world_size
        )
        write_shard(output, dist.rank, *predict_shard(model, loader, progress=dist.is_main))
        barrier(dist)
        if not dist.is_main:
            return ""
        changed = merge_shards(output, loader.entries, dist.world_size)
        agree = 100 * (1 - changed / loader.num_samples)
        return f"wrote {output}: {loader.num_samples} lines, {changed} relabelled ({agree:.2f}% agree with {list_file})"
    finally:
        cleanup()


def _classifier(model_cfg: ModelConfig, data_cfg: DataConfig):
    from tame.models.registry import classifier_from_config

    return classifier_from_config(model_cfg, data_cfg)
