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

from tame.commands.options import add_section_flags, flag_values
from tame.config import load_config
from tame.distributed import pick_device
from tame.export import export_model, read_images
from tame.export.api import check_request
from tame.io import check_output_paths
from tame.models import TameModel
from tame.models.registry import build_classifier


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="run config (model name, layers, data.resize / data.crop)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. data.crop=192")
    parser.set_defaults(intermixed="overrides")  # overrides may also follow the options
    parser.add_argument("--checkpoint", required=True, help="AM checkpoint (ours, a training one or an original)")
    add_section_flags(parser, "export")  # the export section: -o/--output, --format, --opset, --input, ...


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides, flag_values(args, "export"))
    spec = config.export
    check_output_paths([args.checkpoint, args.config, *(spec.verify_images or [])], [spec.output])
    check_request(Path(spec.output), spec.format, spec.opset, spec.input_dtype, spec.batch_size)
    config, classifier = build_classifier(config, checkpoint=args.checkpoint)  # auto sizes: saved, else the model's
    verify_images = None
    if spec.verify_images:
        data = config.data
        verify_images = read_images(spec.verify_images, data.resize, data.crop, data.interpolation)
    model = TameModel.from_config(config.model, input_size=config.data.crop, classifier=classifier)
    model = model.to(pick_device(spec.device))
    model.load_attention(args.checkpoint)
    result = export_model(
        model,
        spec.output,
        input_size=config.data.crop,
        resize=config.data.resize,
        interpolation=config.data.interpolation,
        fmt=spec.format,
        input_dtype=spec.input_dtype,
        dynamic_batch=spec.dynamic_batch,
        batch_size=spec.batch_size,
        opset=spec.opset,
        verify_images=verify_images,
        verify_count=spec.verify_count,
    )
    batch = "dynamic" if spec.dynamic_batch else str(spec.batch_size)
    crop = config.data.crop
    print(f"exported {result.path} ({result.format}, {result.size_bytes / 1e6:.1f} MB) with {result.exporter}")
    print(f"inputs: images [{batch}, 3, {crop}, {crop}] {spec.input_dtype}, classes [{batch}] int64")
    print(result.verification.summary())
    print(f"took {result.seconds:.1f} s")
    return 0
