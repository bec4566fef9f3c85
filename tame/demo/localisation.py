"""Per-class pointing game of the demo's TAME maps, on the report split and on the held-out tuning split.

An average pointing game can hide one class whose map points away from the object (docs/METHOD.md, "known failure
mode"), so the demo reports the worst class. The tuning split (``tame datalist synth --seed 1``) is where the demo
makes its one choice, Grad-CAM's better layer; the report split is never used to choose anything.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from tame.config import Config
from tame.data.boxes import read_boxes, with_regions
from tame.data.loaders import build_loader
from tame.distributed import Dist
from tame.methods import create_explainer
from tame.metrics.localisation import pointing_game
from tame.models import TameModel


@torch.no_grad()
def per_class_pointing_game(cfg: Config, checkpoint: Path, folder: Path) -> list[float]:
    """TAME's pointing game (%) per true class on ``folder/val.txt`` (boxes: ``folder/boxes.json``), explaining the
    predicted class as the comparison does; classes without images get NaN."""
    model = TameModel.from_config(cfg.model, data_cfg=cfg.data)
    model.load_attention(checkpoint)
    model.eval()
    loader = build_loader(
        replace(cfg.data, validate="none"),
        folder / "val.txt",
        folder,
        train=False,
        dist=Dist.local(),
        num_classes=cfg.model.num_classes,
    )
    boxes = read_boxes(folder / "boxes.json", cfg.data.resize, cfg.data.crop)
    hits, labels = [], []
    with create_explainer("tame", model) as explainer:
        for images, batch_labels, regions in with_regions(loader, boxes, (cfg.data.crop, cfg.data.crop)):
            keep = batch_labels >= 0
            hits.append(pointing_game(explainer.explain(images).maps, regions)[keep])
            labels.append(batch_labels[keep])
    hit, label = torch.cat(hits).float(), torch.cat(labels)
    return [round(100.0 * hit[label == k].mean().item(), 1) for k in range(cfg.model.num_classes)]
