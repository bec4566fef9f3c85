"""Export a trained TAME model as one graph: images -> (logits [B, K], class [B], map [B, H, W]).

  tame export --config configs/resnet50.yaml --checkpoint snapshots/resnet50/epoch_4.pt -o resnet50_tame.onnx
  tame export --config configs/vgg16.yaml --checkpoint am.pt -o vgg16.onnx --dynamic-batch --opset 18
  tame export --config configs/resnet50.yaml --checkpoint am.pt -o model.pt --format torchscript
  tame export --config configs/resnet50.yaml --checkpoint am.pt -o model.pt2 --format exported-program

Inputs: ``images`` [B, 3, S, S] RGB, S = data.crop, uint8 0..255 (default) or float32 in [0, 1] (--input float),
already resized and centre-cropped (the classifier's mean/std normalisation is inside the graph); ``classes``
int64 [B], the class to explain per image, -1 = the predicted class. Outputs: ``logits`` [B, K], ``class`` [B]
(the explained class), ``map`` [B, S, S] in [0, 1], exactly as TameModel.explain computes it.
The file is checked against PyTorch on a few images before it is written (random ones, or --verify-images).
The ONNX file runs without the training stack: tame explain --runtime onnx model.onnx IMAGES...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tame.commands.options import add_device_option
from tame.config import load_config
from tame.distributed import pick_device
from tame.errors import TameError
from tame.export import FORMATS, export_model, read_images
from tame.export.api import check_request
from tame.export.exporters import DEFAULT_OPSET
from tame.io import check_output_paths
from tame.models import TameModel
from tame.models.registry import build_classifier


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="run config (model name, layers, data.resize / data.crop)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.crop=192")
    parser.set_defaults(intermixed="overrides")  # overrides may also follow the options
    parser.add_argument("--checkpoint", required=True, help="AM checkpoint (ours, a training one or an original)")
    parser.add_argument("-o", "--output", required=True, help="the exported file (.onnx, .pt, .pt2)")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="default: onnx")
    parser.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: fixed --batch-size)")
    parser.add_argument("--batch-size", type=int, default=1, help="the fixed batch size without --dynamic-batch")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--input", choices=("uint8", "float"), default="uint8", help="image dtype (default uint8)")
    parser.add_argument("--verify-images", nargs="+", metavar="IMAGE", help="verify on these (default: random)")
    parser.add_argument("--verify-count", type=int, default=4, help="random images to verify on (default 4)")
    add_device_option(parser, default="cpu")


def run(args: argparse.Namespace) -> int:
    check_output_paths([args.checkpoint, args.config, *(args.verify_images or [])], [args.output])
    config = load_config(args.config, args.overrides)
    check_request(Path(args.output), args.format, args.opset, args.input, args.batch_size)
    if args.verify_count < 1:
        raise TameError(f"--verify-count must be at least 1, got {args.verify_count}")
    config, classifier = build_classifier(config, checkpoint=args.checkpoint)  # auto sizes: saved, else the model's
    verify_images = None
    if args.verify_images:
        data = config.data
        verify_images = read_images(args.verify_images, data.resize, data.crop, data.interpolation)
    model = TameModel.from_config(config.model, input_size=config.data.crop, classifier=classifier)
    model = model.to(pick_device(args.device))
    model.load_attention(args.checkpoint)
    result = export_model(
        model,
        args.output,
        input_size=config.data.crop,
        resize=config.data.resize,
        interpolation=config.data.interpolation,
        fmt=args.format,
        input_dtype=args.input,
        dynamic_batch=args.dynamic_batch,
        batch_size=args.batch_size,
        opset=args.opset,
        verify_images=verify_images,
        verify_count=args.verify_count,
    )
    batch = "dynamic" if args.dynamic_batch else str(args.batch_size)
    print(f"exported {result.path} ({result.format}, {result.size_bytes / 1e6:.1f} MB) with {result.exporter}")
    print(f"inputs: images [{batch}, 3, {config.data.crop}, {config.data.crop}] {args.input}, classes [{batch}] int64")
    print(result.verification.summary())
    print(f"took {result.seconds:.1f} s")
    return 0
