"""Maps beside the ground truth: one figure per validation image, every method on the same colour scale."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tame.checkpoint.naming import epoch_file
from tame.config import Config
from tame.data.boxes import read_boxes
from tame.data.class_names import class_names
from tame.data.loaders import build_loader
from tame.distributed import Dist
from tame.evaluation.spec import split_method
from tame.methods import create_explainer
from tame.models import TameModel
from tame.viz.overlay import method_label, save_comparison


def write_gallery(cfg: Config, out: Path, count: int, methods: Sequence[str]) -> list[tuple[str, Path]]:
    """Write ``count`` comparison figures under ``out/gallery``; returns (caption, path) pairs."""
    model = TameModel.from_config(cfg.model, data_cfg=cfg.data)
    model.load_attention(epoch_file(cfg.output_dir, cfg.train.epochs))
    model.eval()
    loader = build_loader(
        cfg.data,
        cfg.data.val_list,
        cfg.data.val_root,
        train=False,
        dist=Dist.local(),
        global_batch_size=count,
        max_samples=count,
    )
    images, _ = next(iter(loader))
    boxes = read_boxes(Path(cfg.data.val_root) / "boxes.json", cfg.data.resize, cfg.data.crop)
    paths = [entry.path for entry in loader.entries[:count]]
    maps = {}
    for method in methods:
        name, layer = split_method(method)
        with create_explainer(name, model, layer=layer) as explainer:
            explanation = explainer.explain(images)
        maps[method_label(name) + (f" ({layer})" if layer else "")] = explanation.maps
    classes = explanation.classes
    names = class_names(cfg.model.class_names, model.num_classes)  # the demo's config names data/classes.txt
    figures = []
    for i, path in enumerate(paths):
        name = names[int(classes[i])]
        target = out / "gallery" / f"{i:02d}.png"
        save_comparison(
            images[i], {m: v[i] for m, v in maps.items()}, target, title=f"predicted: {name}", boxes=boxes.get(path, [])
        )
        figures.append((f"{path}: predicted {name}", target))
    return figures
