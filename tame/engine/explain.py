"""Explain your own images: overlays with a colour bar, raw maps (.npy) and an index.html gallery.

  tame explain photos/ cat.jpg --config configs/resnet50.yaml --checkpoint snapshots/resnet50/epoch_4.pt
  tame explain img.png --config configs/vgg16.yaml --checkpoint vgg16_TAME.pt --top-k 3 --out maps/
  tame explain img.png --model resnet50.tv_in1k --layers layer2 layer3 layer4 --checkpoint am.pt --class 281

Any image PIL reads (RGBA, grayscale, CMYK, 16-bit, any size). Preprocessing is the evaluation transform
(resize the shorter side, centre crop) or, with --no-crop, the whole image resized to the crop size.
Unreadable or non-image files are listed and skipped; the rest are explained.
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tame.config import load_config
from tame.data.images import IMAGE_SUFFIXES, DecodeError, eval_image
from tame.distributed import pick_device
from tame.errors import TameError
from tame.models import TameModel
from tame.options import add_device_option
from tame.viz.overlay import save_overlay


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--config", help="run config (model name, layers, sizes)")
    parser.add_argument(
        "--checkpoint", required=True, help="AM checkpoint: ours, a training checkpoint or an original TAME snapshot"
    )
    parser.add_argument("--model", help="classifier name (overrides the config)")
    parser.add_argument("--layers", nargs="+", help="tapped layers (override the config)")
    parser.add_argument("--weights", help="local classifier weights (overrides the config)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--class", dest="class_index", type=int, help="explain this class index")
    group.add_argument("--top-k", type=int, default=1, help="explain the k most probable classes (default 1)")
    parser.add_argument("--no-crop", action="store_true", help="explain the whole image, resized (no centre crop)")
    parser.add_argument("--out", default="explanations", help="output folder (default: explanations/)")
    parser.add_argument("--batch-size", type=int, default=16)
    add_device_option(parser)


def run(args: argparse.Namespace) -> int:
    overrides = [f"model.{k}={v}" for k, v in (("name", args.model), ("weights", args.weights)) if v]
    if args.layers:
        overrides.append(f"model.layers=[{', '.join(args.layers)}]")
    if args.config is None and not (args.model and args.layers):
        raise TameError("give --config, or --model and --layers")
    config = load_config(args.config, overrides)
    if args.top_k < 1:
        raise TameError(f"--top-k must be at least 1, got {args.top_k}")
    files, skipped = list_image_files(args.paths)
    device = pick_device(args.device)
    model = TameModel.from_config(config.model, input_size=config.data.crop).to(device)
    model.load_attention(args.checkpoint)
    model.eval()
    if args.class_index is not None and not 0 <= args.class_index < model.num_classes:
        raise TameError(f"--class {args.class_index} is out of range 0..{model.num_classes - 1}")
    names = class_names(model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for start in tqdm(range(0, len(files), args.batch_size), desc="explain", unit="batch", disable=not files):
        batch_files, images = [], []
        for path in files[start : start + args.batch_size]:
            try:
                images.append(eval_image(path, config.data.resize, config.data.crop, center_crop=not args.no_crop))
                batch_files.append(path)
            except DecodeError as err:
                skipped.append((path, str(err)))
        if images:
            entries += explain_batch(model, torch.stack(images).to(device), batch_files, args, names, out)
    write_gallery(out, entries, skipped)
    for path, why in skipped:
        print(f"skipped {path}: {why}")
    print(
        f"explained {len({e['image'] for e in entries})} images ({len(entries)} maps), skipped {len(skipped)}; "
        f"gallery: {out / 'index.html'}"
    )
    if not entries:
        raise TameError("no readable images among the given paths")
    return 0


def explain_batch(
    model: TameModel, images: torch.Tensor, files: list[Path], args, names: list[str], out: Path
) -> list[dict]:
    """Write overlay PNG + raw .npy per image and class; return gallery entries."""
    with torch.no_grad():
        probabilities = model.predict(images).float().softmax(dim=1)
    if args.class_index is not None:
        ranked = torch.full((len(images), 1), args.class_index, device=images.device)
    else:
        ranked = probabilities.topk(min(args.top_k, model.num_classes), dim=1).indices  # [B, k]
    entries = []
    for rank in range(ranked.shape[1]):
        classes = ranked[:, rank]
        maps = model.explain(images, classes).maps  # [B, H, W]
        for i, path in enumerate(files):
            k = int(classes[i])
            stem = f"{path.stem}_class{k}"
            label = f"{names[k]} ({k})" if names else f"class {k}"
            prob = float(probabilities[i, k])
            np.save(out / f"{stem}.npy", maps[i].cpu().numpy().astype(np.float32))
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


def list_image_files(paths: list[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
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
    (out / "index.html").write_text(page)
    (out / "explanations.json").write_text(
        json.dumps({"maps": entries, "skipped": [[str(p), w] for p, w in skipped]}, indent=1)
    )
