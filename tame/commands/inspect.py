"""List a model's layers that produce feature maps, with shapes and parameter counts (works offline).

tame-inspect resnet50                         # all map-producing modules, default layers marked with *
tame-inspect vgg16 --layers features.16 features.23 features.30   # only these: shapes and the AM size
tame-inspect --list 'convnext*'               # model names
tame-inspect vit_base_patch16_224 --features torchvision.models:resnet18 --version P-TAME \
    --layers layer1 layer2 layer3 layer4       # P-TAME: the AM reads the auxiliary network's layers
"""

from __future__ import annotations

import argparse

from tame.errors import TameError
from tame.models.inspect import LayerInfo, attention_for, chosen_layers, default_layers, feature_layers
from tame.models.registry import create_classifier, list_backbones
from tame.models.versions import list_attention_versions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model", nargs="?", help="timm name (e.g. resnet50, vgg16.tv_in1k), registered name or module:fn"
    )
    parser.add_argument(
        "--layers", nargs="+", metavar="NAME", help="print only these layers (validated), their shapes and the AM size"
    )
    parser.add_argument("--input-size", type=int, default=224, help="square input size in pixels (default 224)")
    parser.add_argument("--weights", help="local weights file (else random weights: shapes do not depend on them)")
    parser.add_argument("--version", default="TAME", help=f"AM version ({', '.join(list_attention_versions())})")
    parser.add_argument(
        "--features",
        metavar="NAME",
        help="an auxiliary network whose layers the AM reads (P-TAME: torchvision.models:resnet18); MODEL is then "
        "only called on images, and --layers names the auxiliary network's layers",
    )
    parser.add_argument("--all", action="store_true", help="also list modules below the default depth")
    parser.add_argument("--list", metavar="PATTERN", help="list model names matching PATTERN and exit")


MAX_INPUT_SIZE = 4096  # pixels; beyond this one dry run needs tens of GB


def run(args: argparse.Namespace) -> int:
    if args.list is not None:
        print("\n".join(list_backbones(args.list)))
        return 0
    if not args.model:
        raise TameError("name a model, e.g. `tame-inspect resnet50` (or --list PATTERN)")
    if not 0 < args.input_size <= MAX_INPUT_SIZE:
        raise TameError(f"--input-size {args.input_size}: give a side in pixels, 1..{MAX_INPUT_SIZE} (e.g. 224)")
    classifier = create_classifier(args.model, pretrained=False, weights=args.weights)
    tapped, name = classifier, args.model
    if args.features:  # P-TAME: the layers are the auxiliary network's
        tapped, name = create_classifier(args.features, pretrained=False), args.features
        classes = getattr(classifier.net, "num_classes", None) or 1000
        print(f"explained: {args.model} ({classes} classes), only called on images; features: {name} (auxiliary)")
    layers = feature_layers(tapped, args.input_size)
    if not layers:
        raise TameError(f"model {name!r} produced no feature maps at {args.input_size}px")
    if args.layers:
        chosen = chosen_layers(tapped, layers, args.layers, name)
        attention, num_classes = attention_for(classifier, chosen, args.version)
        size = sum(p.numel() for p in attention.parameters())
        print(f"{name} at {args.input_size}x{args.input_size}: layers OK")
        _print_table(chosen, [], args.layers, show_all=True)
        print(
            f"attention mechanism {args.version}: {size:,} parameters, maps {attention.size[0]}x{attention.size[1]} "
            f"for {num_classes} classes"
        )
        return 0
    defaults = default_layers(layers)
    print(
        f"{name}: {len(layers)} modules produce feature maps at {args.input_size}x{args.input_size} "
        f"(* = default layer set)"
    )
    _print_table(layers, defaults, [], show_all=args.all)
    print(f"default layers: {' '.join(defaults)}")
    return 0


def _print_table(layers: list[LayerInfo], defaults: list[str], named: list[str], show_all: bool) -> None:
    """One row per layer down to the deepest default layer (all with ``show_all``), defaults marked with *."""
    depth = {info.name: info.depth for info in layers}
    max_depth = max(depth[name] for name in defaults) if defaults else 0
    width = max(40, *(len(info.name) for info in layers))
    print(f"  {'layer':<{width}} {'C x H x W':>18} {'params':>12}")
    for info in layers:
        if not show_all and info.depth > max_depth and info.name not in named:
            continue
        mark = "*" if info.name in defaults else " "
        c, h, w = info.shape
        print(f"{mark} {info.name:<{width}} {f'{c} x {h} x {w}':>18} {info.params:>12,}")
