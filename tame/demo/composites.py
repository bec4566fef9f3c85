"""The report's composite figures: two objects of different classes side by side, each method's map for each class.

The composites are the first ones the class-sensitivity protocol scores on the report split (the same seed and
draw, :mod:`tame.evaluation.class_sensitivity`), so the figure shows what the numbers measure.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tame.checkpoint.naming import epoch_file
from tame.config import Config
from tame.data.class_names import class_names
from tame.data.lists import read_list
from tame.evaluation.class_sensitivity import CompositeSet, composite_maps, plan_composites
from tame.evaluation.spec import split_method
from tame.methods import create_explainer
from tame.metrics.class_sensitivity import compose
from tame.models import TameModel
from tame.viz.overlay import method_label, save_grid


def write_composites(
    cfg: Config, out: Path, count: int, methods: Sequence[str], tiles: int = 2
) -> list[tuple[str, Path]]:
    """Write ``count`` composite figures under ``out/composites``; returns (caption, path) pairs."""
    model = TameModel.from_config(cfg.model, data_cfg=cfg.data)
    model.load_attention(epoch_file(cfg.output_dir, cfg.train.epochs))
    model.eval()
    entries = read_list(cfg.data.val_list)
    interpolation = cfg.data.interpolation or "bilinear"
    source = CompositeSet(entries, Path(cfg.data.val_root), cfg.data.resize, cfg.data.crop, interpolation)
    plan = plan_composites([entry.label for entry in entries], tiles, max(1, len(entries) // tiles))[:count]
    composites, labels = compose(source.images(plan)), source.labels(plan)  # [n, 3, H, W], [n, T]
    maps = {}
    for method in methods:
        name, layer = split_method(method)
        with create_explainer(name, model, layer=layer) as explainer:
            maps[method_label(name) + (f" ({layer})" if layer else "")] = composite_maps(explainer, composites, labels)
    names = class_names(cfg.model.class_names, model.num_classes)
    figures = []
    for i in range(len(plan)):
        classes = [names[int(k)] for k in labels[i]]
        rows = {classes[t]: {m: v[i, t] for m, v in maps.items()} for t in range(tiles)}
        target = out / "composites" / f"{i:02d}.png"
        save_grid(composites[i], rows, target, title=" | ".join(classes))
        figures.append((f"composite {i}: {' (left) and '.join(classes)} (right), each class explained", target))
    return figures
