"""Relabel a list with a classifier's own predictions (how the original TAME training lists were made).

Batched inference over the list (eval transform, list order), across GPUs when launched with torchrun: each rank
predicts its shard and writes it, then rank 0 merges the shards in list order into ``OUT`` (paths as in the input
list; :mod:`tame.data.predict`). Images get the model's own preprocessing (sizes, interpolation, mean/std:
:mod:`tame.models.preprocessing`) unless the config or the options set them::

    tame datalist predict LIST --root DIR --model resnet50.tv_in1k -o OUT
    tame datalist predict LIST --root DIR --config configs/efficientnet_lite0.yaml -o OUT
    torchrun --nproc_per_node 4 -m tame.cli datalist predict LIST --root DIR --model resnet50.tv_in1k -o OUT
"""

from __future__ import annotations

import os

import numpy as np
import torch
from tqdm import tqdm

from tame.config import Config, DataConfig, ModelConfig
from tame.data.loaders import build_loader
from tame.data.predict import merge_shards, write_shard
from tame.data.sharding import Loader
from tame.distributed import barrier
from tame.session import run_session


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
    mean/std); unset sizes in ``data_cfg`` (None) come from the model; ``data_cfg.batch_size`` is the global batch.
    """
    from tame.models.registry import build_classifier

    if isinstance(model_cfg, str):
        model_cfg = ModelConfig(name=model_cfg, pretrained=pretrained, weights=weights)
    config = Config(model=model_cfg, data=data_cfg)
    with run_session(config, device=device, global_batch_size=data_cfg.batch_size) as session:  # --batch-size
        torch.manual_seed(session.cfg.train.seed)  # random weights (--no-pretrained): the same network on every rank
        cfg, model = build_classifier(session.cfg)  # built once; unset sizes and mean/std: the model's own
        dist = session.dist
        model = model.to(dist.device)
        loader = build_loader(cfg.data, list_file, root, train=False, dist=dist)
        write_shard(output, dist.rank, *predict_shard(model, loader, progress=dist.is_main))
        barrier(dist)
        if not dist.is_main:
            return ""
        changed = merge_shards(output, loader.entries, dist.world_size)
        agree = 100 * (1 - changed / loader.num_samples)
        return f"wrote {output}: {loader.num_samples} lines, {changed} relabelled ({agree:.2f}% agree with {list_file})"
