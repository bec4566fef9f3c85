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
from pathlib import Path

from tame.config import load_config
from tame.distributed import pick_device
from tame.errors import TameError
from tame.explain import ExplainSpec, explain_images
from tame.models import TameModel
from tame.models.preprocessing import resolve_config
from tame.options import add_device_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", help="image files or folders")
    parser.add_argument("--config", help="run config (model name, layers, sizes)")
    parser.add_argument("--checkpoint", help="AM checkpoint: ours, a training checkpoint or an original TAME snapshot")
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: the first path is a `tame export` ONNX file, run in ONNX Runtime (no config, no checkpoint)",
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
    if args.runtime == "onnx":
        return _run_onnx(args)
    if not args.checkpoint:
        raise TameError("--checkpoint is required (or --runtime onnx with an exported model)")
    overrides = [f"model.{k}={v}" for k, v in (("name", args.model), ("weights", args.weights)) if v]
    if args.layers:
        overrides.append(f"model.layers=[{', '.join(args.layers)}]")
    if args.config is None and not (args.model and args.layers):
        raise TameError("give --config, or --model and --layers")
    config = load_config(args.config, overrides)
    if args.top_k < 1:
        raise TameError(f"--top-k must be at least 1, got {args.top_k}")
    config = resolve_config(config, checkpoint=args.checkpoint)  # saved preprocessing where the config leaves it
    spec = ExplainSpec(
        resize=config.data.resize,
        crop=config.data.crop,
        interpolation=config.data.interpolation,
        center_crop=not args.no_crop,
        class_index=args.class_index,
        top_k=args.top_k,
        batch_size=args.batch_size,
    )
    model = TameModel.from_config(config.model, data_cfg=config.data).to(pick_device(args.device))
    model.load_attention(args.checkpoint)
    model.eval()
    result = explain_images(model, args.paths, args.out, spec)
    return _summary(result.images, result.entries, result.skipped, Path(args.out))


def _run_onnx(args: argparse.Namespace) -> int:
    from tame.export.runtime import explain_with_onnx

    if len(args.paths) < 2:
        raise TameError("--runtime onnx: give the exported model, then the images (tame explain model.onnx IMAGES)")
    entries, skipped = explain_with_onnx(
        args.paths[0],
        args.paths[1:],
        args.out,
        top_k=args.top_k,
        class_index=args.class_index,
        no_crop=args.no_crop,
        batch_size=args.batch_size,
    )
    return _summary(len({entry["image"] for entry in entries}), entries, skipped, Path(args.out))


def _summary(images: int, entries: list[dict], skipped: list, out: Path) -> int:
    for path, why in skipped:
        print(f"skipped {path}: {why}")
    print(f"explained {images} images ({len(entries)} maps), skipped {len(skipped)}; gallery: {out / 'index.html'}")
    if not entries:
        raise TameError("no readable images among the given paths")
    return 0
