"""Explanation maps of your own images: overlays with a colour bar, raw maps (.npy) and an index.html gallery.

Any image PIL reads (RGBA, grayscale, CMYK, 16-bit, any size). Preprocessing is the evaluation transform
(resize the shorter side, centre crop) or, with ``center_crop=False``, the whole image resized to the crop size.
Unreadable or non-image files are listed as skipped; the rest are explained. The CLI is ``tame explain``
(:mod:`tame.commands.explain`).
"""

from __future__ import annotations

import html
import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tame.data.images import IMAGE_SUFFIXES, DecodeError, eval_image
from tame.errors import TameError
from tame.io import write_bytes_atomic, write_text_atomic
from tame.models import TameModel
from tame.viz.overlay import save_overlay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExplainSpec:
    """What to explain and how: which classes (``class_index``, else the ``top_k`` most probable) and the
    preprocessing (shorter side ``resize``, then a ``crop`` x ``crop`` centre crop or, without ``center_crop``,
    the whole image resized to ``crop``)."""

    resize: int = 256
    crop: int = 224
    center_crop: bool = True
    interpolation: str = "bilinear"
    class_index: int | None = None
    top_k: int = 1
    batch_size: int = 16


@dataclass
class ExplainResult:
    entries: list[dict] = field(default_factory=list)  # one per map: image, class, name, probability, rank, files
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, why)

    @property
    def images(self) -> int:
        return len({entry["image"] for entry in self.entries})


def explain_images(model: TameModel, paths: list[str | Path], out: str | Path, spec: ExplainSpec) -> ExplainResult:
    """Explain every readable image among ``paths`` (files or folders) with ``model`` (in eval mode, on its device);
    writes ``<stem>_class<k>.png`` / ``.npy`` per map, ``index.html`` and ``explanations.json`` into ``out``."""
    if spec.top_k < 1:
        raise TameError(f"--top-k must be at least 1, got {spec.top_k}")
    if spec.class_index is not None and not 0 <= spec.class_index < model.num_classes:
        raise TameError(f"--class {spec.class_index} is out of range 0..{model.num_classes - 1}")
    files, skipped = list_image_files(paths)
    device = next(model.parameters()).device
    names = class_names(model)
    out = Path(out)
    result = ExplainResult(skipped=skipped)
    batches = range(0, len(files), spec.batch_size)
    for start in tqdm(batches, desc="explain", unit="batch", disable=not files):
        batch_files, images = [], []
        for path in files[start : start + spec.batch_size]:
            try:
                images.append(
                    eval_image(
                        path, spec.resize, spec.crop, center_crop=spec.center_crop, interpolation=spec.interpolation
                    )
                )
                batch_files.append(path)
            except DecodeError as err:
                result.skipped.append((path, str(err)))
        if images:
            result.entries += explain_batch(model, torch.stack(images).to(device), batch_files, spec, names, out)
    write_gallery(out, result.entries, result.skipped)
    log.info("wrote %d maps and %s", len(result.entries), out / "index.html")
    return result


def explain_batch(
    model: TameModel, images: torch.Tensor, files: list[Path], spec: ExplainSpec, names: list[str], out: Path
) -> list[dict]:
    """images [B, 3, H, W]: write overlay PNG + raw .npy per image and class; return the gallery entries."""
    with torch.no_grad():
        probabilities = model.predict(images).float().softmax(dim=1)
    if spec.class_index is not None:
        ranked = torch.full((len(images), 1), spec.class_index, device=images.device)
    else:
        ranked = probabilities.topk(min(spec.top_k, model.num_classes), dim=1).indices  # [B, k]
    entries = []
    for rank in range(ranked.shape[1]):
        classes = ranked[:, rank]
        maps = model.explain(images, classes).maps  # [B, H, W]
        for i, path in enumerate(files):
            k = int(classes[i])
            stem = f"{path.stem}_class{k}"
            label = f"{names[k]} ({k})" if names else f"class {k}"
            prob = float(probabilities[i, k])
            save_npy(out / f"{stem}.npy", maps[i].cpu().numpy().astype(np.float32))
            save_overlay(images[i], maps[i], out / f"{stem}.png", title=f"{label}  p={prob:.3f}")
            entries.append(
                {
                    "image": str(path),
                    "class": k,
                    "name": label,
                    "probability": prob,
                    "rank": rank + 1,
                    "overlay": f"{stem}.png",
                    "map": f"{stem}.npy",
                }
            )
    return entries


def save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes_atomic(path, buffer.getvalue())


def list_image_files(paths: list[str | Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files named, and image files inside named folders (recursively, sorted); plus (path, reason) skipped."""
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for given in map(Path, paths):
        if given.is_dir():
            for path in sorted(p for p in given.rglob("*") if p.is_file()):
                if path.suffix.lower() in IMAGE_SUFFIXES:
                    files.append(path)
                else:
                    skipped.append((path, "not an image file name"))
        elif given.is_file():
            files.append(given)
        else:
            skipped.append((given, "no such file or folder"))
    return files, skipped


def class_names(model: TameModel) -> list[str]:
    """ImageNet class names from timm when the classifier has 1000 classes, else none."""
    if model.num_classes != 1000:
        return []
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return [info.index_to_description(i) for i in range(1000)]
    except Exception:  # older timm: names are a nicety, not a requirement
        return []


def write_gallery(out: Path, entries: list[dict], skipped: list[tuple[Path, str]]) -> None:
    """index.html: one card per map (overlay, class name, probability) and the list of skipped files."""
    cards = "\n".join(
        f'<figure><img src="{html.escape(e["overlay"])}" alt="{html.escape(e["name"])}">'
        f"<figcaption><b>{html.escape(Path(e['image']).name)}</b><br>#{e['rank']} {html.escape(e['name'])} "
        f'&middot; p = {e["probability"]:.3f} &middot; <a href="{html.escape(e["map"])}">map</a></figcaption></figure>'
        for e in entries
    )
    skipped_html = "".join(f"<li>{html.escape(str(p))}: {html.escape(w)}</li>" for p, w in skipped)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>TAME explanations</title>
<style>body{{font-family:sans-serif;margin:1.5em}} figure{{display:inline-block;margin:.5em;width:420px}}
img{{width:100%}} figcaption{{font-size:.85em}}</style></head><body>
<h1>TAME explanations</h1><p>{len(entries)} maps. Colour: 0 (blue, unused) to 1 (red, most used).</p>
{cards}
{f"<h2>Skipped ({len(skipped)})</h2><ul>{skipped_html}</ul>" if skipped else ""}
</body></html>
"""
    write_text_atomic(out / "index.html", page)
    write_text_atomic(
        out / "explanations.json",
        json.dumps({"maps": entries, "skipped": [[str(p), w] for p, w in skipped]}, indent=1),
    )
