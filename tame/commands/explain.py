"""Explain your own images: overlays with a colour bar, raw maps (.npy) and an index.html gallery.

  tame explain photos/ cat.jpg --config configs/resnet50.yaml --checkpoint snapshots/resnet50/epoch_4.pt
  tame explain img.png --config configs/vgg16.yaml --checkpoint vgg16_TAME.pt --top-k 3 --out maps/
  tame explain img.png --model resnet50.tv_in1k --layers layer2 layer3 layer4 --checkpoint am.pt --class 281
  tame explain photos/ --config configs/resnet50.yaml --method gradcam --layer layer4       # no checkpoint needed
  tame explain photos/ --config configs/resnet50.yaml --checkpoint am.pt --methods tame gradcam rise --num-masks 1000
  tame explain shapes/ data.crop=96 model.class_names=data/synthetic/classes.txt --config configs/synthetic.yaml ...

Config overrides are `key=value` arguments among the paths, as in `tame eval` / `tame train`: an argument
`section.key=value` that is not an existing file is an override (write ./name=x.jpg for such a file). Paths and
overrides may come before, between and after the options.

Methods: tame (needs --checkpoint) and the baselines (gradcam, gradcam++, xgradcam, scorecam, ablationcam, rise,
random). With several, each image and class also gets a figure of the methods side by side on one colour scale.
Class names: model.class_names (a file, one name per line or `label name` per line, as `tame datalist synth`
writes); ImageNet's for a 1000-class classifier.

Any image PIL reads (RGBA, grayscale, CMYK, 16-bit, any size). Preprocessing is the evaluation transform
(resize the shorter side, centre crop) or, with --no-crop, the whole image resized to the crop size.
Unreadable or non-image files are listed and skipped; the rest are explained. Outputs keep each image's path inside
its folder (OUT/trip/cat_class281.png) and never overwrite one another; the --out folder is never read as input.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path

from tame.commands.options import add_device_option
from tame.config import load_config
from tame.distributed import pick_device
from tame.errors import TameError
from tame.explain.files import shown
from tame.explain.gallery import ExplainSpec, explain_images
from tame.methods import list_methods
from tame.models import TameModel
from tame.models.registry import build_classifier

log = logging.getLogger(__name__)
OVERRIDE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*=.*", re.DOTALL)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="PATH|key=value", help="image files or folders, and config overrides"
    )
    parser.add_argument("--config", help="run config (model name, layers, sizes, model.class_names)")
    parser.add_argument("--checkpoint", help="AM checkpoint (ours, a training one or an original TAME snapshot)")
    parser.add_argument(
        "--methods",
        "--method",
        nargs="+",
        default=["tame"],
        metavar="METHOD",
        help=f"one or more of {', '.join(list_methods())} (default: tame); tame runs whichever family member the "
        "checkpoint holds: TAME, T-TAME, P-TAME or L-CAM-Img",
    )
    parser.add_argument("--layer", help="target layer of the CAM methods (default: the config's last layer)")
    parser.add_argument("--num-masks", type=int, help="RISE: number of random masks (default 4000)")
    parser.add_argument("--mask-batch", type=int, help="RISE, Score-CAM, Ablation-CAM: masked images per forward")
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: the first path is a `tame export` ONNX file, run in ONNX Runtime (no checkpoint; of the "
        "config, only model.class_names)",
    )
    parser.add_argument("--model", help="classifier name (overrides the config)")
    parser.add_argument("--layers", nargs="+", help="tapped layers (override the config)")
    parser.add_argument("--weights", help="local classifier weights (overrides the config)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--class", dest="class_index", type=int, help="explain this class index")
    group.add_argument("--top-k", type=int, default=1, help="explain the k most probable classes (default 1)")
    parser.add_argument("--no-crop", action="store_true", help="explain the whole image, resized (no centre crop)")
    parser.add_argument("--out", default="explanations", help="output folder (default: explanations/)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    add_device_option(parser)
    parser.set_defaults(intermixed="paths")  # paths and overrides before, between and after the options


def split_overrides(arguments: list[str]) -> tuple[list[str], list[str]]:
    """(paths, ``key=value`` overrides): an argument shaped like ``section.key=value`` that names no existing file
    or folder is an override."""
    paths, overrides = [], []
    for argument in arguments:
        is_override = OVERRIDE.fullmatch(argument) and not os.path.exists(argument)
        (overrides if is_override else paths).append(argument)
    return paths, overrides


def run(args: argparse.Namespace) -> int:
    paths, overrides = split_overrides(args.paths)
    if args.runtime == "onnx":
        return _run_onnx(args, paths, overrides)
    if not paths:
        raise TameError("give at least one image file or folder")
    overrides = [f"model.{k}={v}" for k, v in (("name", args.model), ("weights", args.weights)) if v] + overrides
    if args.layers:
        overrides.insert(0, f"model.layers=[{', '.join(args.layers)}]")
    if args.config is None and not (args.model and args.layers):
        raise TameError("give --config, or --model and --layers")
    spec_options = dict(methods=tuple(args.methods), layer=args.layer, num_masks=args.num_masks)
    spec_options |= dict(mask_batch=args.mask_batch, class_index=args.class_index, top_k=args.top_k)
    ExplainSpec(batch_size=args.batch_size, **spec_options)  # bad options fail before any model is built
    uses_tame = any(m.lower() == "tame" for m in args.methods)
    if uses_tame and not args.checkpoint:
        raise TameError("--checkpoint is required for method tame (or --runtime onnx with an exported model)")
    config = load_config(args.config, overrides)
    config, classifier = build_classifier(config, checkpoint=args.checkpoint)  # saved preprocessing, else the model's
    spec = ExplainSpec(
        resize=config.data.resize,
        crop=config.data.crop,
        interpolation=config.data.interpolation,
        center_crop=not args.no_crop,
        batch_size=args.batch_size,
        class_names=config.model.class_names,
        **spec_options,
    )
    device = pick_device(args.device)
    model = TameModel.from_config(config.model, data_cfg=config.data, classifier=classifier).to(device)
    if uses_tame:
        model.load_attention(args.checkpoint)
    elif args.checkpoint:
        log.warning("--checkpoint is not used: no method here is tame (%s)", ", ".join(spec.methods))
    model.eval()
    result = explain_images(model, paths, args.out, spec)
    return _summary(result.images, result.entries, result.skipped, Path(args.out))


def _run_onnx(args: argparse.Namespace, paths: list[str], overrides: list[str]) -> int:
    from tame.export.runtime import explain_with_onnx

    if len(paths) < 2:
        raise TameError("--runtime onnx: give the exported model, then the images (tame explain model.onnx IMAGES)")
    if args.methods != ["tame"] or args.checkpoint:
        raise TameError("--runtime onnx runs the exported TAME graph: no --method or --checkpoint")
    config = load_config(args.config, overrides)
    entries, skipped = explain_with_onnx(
        paths[0],
        paths[1:],
        args.out,
        top_k=args.top_k,
        class_index=args.class_index,
        no_crop=args.no_crop,
        batch_size=args.batch_size,
        class_names_file=config.model.class_names,
    )
    return _summary(len({entry["image"] for entry in entries}), entries, skipped, Path(args.out))


def _summary(images: int, entries: list[dict], skipped: list, out: Path) -> int:
    for path, why in skipped:
        print(f"skipped {shown(path)}: {shown(why)}")
    gallery = shown(out / "index.html")
    print(f"explained {images} images ({len(entries)} maps), skipped {len(skipped)}; gallery: {gallery}")
    return 0
