"""Check, make, predict and synthesise list files (``path label`` per line, paths relative to an image root).

  tame datalist check LIST --root DIR [--num-classes K] [--decode] [--write-clean OUT]
  tame datalist make --tree DIR -o OUT [--classes CLASSES.txt]
  tame datalist make --flat DIR --labels LABELS.txt -o OUT
  tame datalist make --list val.txt --subset Validation_2000.txt=2000 --subset Evaluation_2000.txt=2000 --seed 0
  tame datalist predict LIST --root DIR --model resnet50.tv_in1k -o OUT   (torchrun --nproc_per_node N -m tame.cli ...)
  tame datalist synth OUT [--classes 6] [--train-per-class 100] [--val-per-class 20] [--size 64] [--seed 0]

`check` exits with 1 when it finds bad lines (all of them are printed), 0 when the list is clean.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tame.commands.options import add_device_option
from tame.errors import TameError
from tame.io import check_output_paths, writable_target


def _add_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("list", help="list file")
    parser.add_argument("--root", required=True, help="image root the list's paths are relative to")
    parser.add_argument("--num-classes", type=int, help="labels must be below this")
    parser.add_argument("--decode", action="store_true", help="also decode every image to RGB (slow, thorough)")
    parser.add_argument("--workers", type=int, default=min(32, 4 * (os.cpu_count() or 1)), help="checking threads")
    parser.add_argument("--write-clean", metavar="OUT", help="write the good lines to OUT")


def _run_check(args: argparse.Namespace) -> int:
    from tame.data.check import check_list
    from tame.data.lists import write_list

    if not Path(args.root).is_dir():
        raise TameError(f"image root not found: {args.root}")
    if args.write_clean:
        check_output_paths([args.list], [args.write_clean])  # before the (slow) check
        writable_target(args.write_clean)
    report = check_list(args.list, args.root, args.num_classes, decode=args.decode, workers=args.workers, progress=True)
    for problem in report.problems:
        print(problem.format(args.list))
    print(f"{args.list}: {report.summary()}")
    if args.write_clean and not report.entries:
        print(f"no good lines: {args.write_clean} not written")
        return 1
    if args.write_clean:
        count = write_list(args.write_clean, report.entries)
        print(f"wrote {count} good lines to {args.write_clean}")
    return 0 if report.ok else 1


def _subset(text: str) -> tuple[str, int]:
    path, sep, count = text.rpartition("=")
    if not sep or not path or not count.isdigit():
        raise argparse.ArgumentTypeError(f"expected FILE=COUNT, got {text!r}")
    return path, int(count)


def _add_make(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--tree", metavar="DIR", help="ImageFolder-style tree: DIR/<class>/<images>")
    source.add_argument("--flat", metavar="DIR", help="a folder of images, labelled by --labels")
    source.add_argument("--list", metavar="FILE", help="an existing list (to draw --subset lists from)")
    parser.add_argument("--labels", metavar="FILE", help="for --flat: 'name label' lines, names relative to DIR")
    parser.add_argument("-o", "--output", help="write the whole list here")
    parser.add_argument("--classes", metavar="FILE", help="for --tree: write 'label class' lines here")
    parser.add_argument(
        "--subset",
        action="append",
        type=_subset,
        default=[],
        metavar="FILE=COUNT",
        help="write a random subset of COUNT entries to FILE (repeatable; subsets are disjoint)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsets")


def _run_make(args: argparse.Namespace) -> int:
    from tame.data.lists import read_list, write_list
    from tame.data.make import list_from_flat, list_from_tree, random_subsets, write_classes

    if not args.output and not args.subset:
        raise TameError("nothing to write: give -o OUT and/or --subset FILE=COUNT")
    if (args.flat is None) != (args.labels is None):
        raise TameError("--flat DIR and --labels FILE go together")
    if args.classes and not args.tree:
        raise TameError("--classes is written for --tree only")
    outputs = [p for p in (args.output, args.classes) if p] + [path for path, _ in args.subset]
    check_output_paths([args.list, args.labels], outputs)  # before anything is written
    if args.tree:
        entries, labels = list_from_tree(args.tree)
        print(f"{args.tree}: {len(entries)} images in {len(labels)} classes")
        if args.classes:
            write_classes(args.classes, labels)
    elif args.flat:
        entries, unused = list_from_flat(args.flat, args.labels)
        print(f"{args.flat}: {len(entries)} images ({unused} names in {args.labels} have no image)")
    else:
        entries = read_list(args.list)
    if args.output:
        print(f"wrote {write_list(args.output, entries)} lines to {args.output}")
    subsets = random_subsets(entries, [count for _, count in args.subset], args.seed)
    for (path, _), subset in zip(args.subset, subsets):
        print(f"wrote {write_list(path, subset)} lines to {path}")
    return 0


def _add_predict(parser: argparse.ArgumentParser) -> None:
    from tame.config import DataConfig
    from tame.config.choices import Backend, ListValidation, allowed

    defaults = DataConfig()
    parser.add_argument("list", help="list file to relabel")
    parser.add_argument("--root", required=True, help="image root the list's paths are relative to")
    parser.add_argument("--config", help="run config: model (name, weights, mean/std) and data sizes from it")
    parser.add_argument("--model", help="classifier: timm name, registered name or module:function")
    parser.add_argument("--weights", help="local state-dict file of the classifier (instead of a download)")
    parser.add_argument("--no-pretrained", action="store_true", help="random weights (tests)")
    parser.add_argument("-o", "--output", required=True, help="the relabelled list")
    parser.add_argument("--batch-size", type=int, default=256, help="global batch (split over the processes)")
    parser.add_argument("--workers", type=int, default=defaults.workers, help="decoding threads/processes per rank")
    parser.add_argument("--backend", choices=allowed(Backend), default="auto")
    parser.add_argument("--resize", type=int, help="shorter side before the centre crop (default: the model's)")
    parser.add_argument("--crop", type=int, help="default: the model's")
    parser.add_argument("--validate", choices=allowed(ListValidation), default="cheap")
    add_device_option(parser)


def _run_predict(args: argparse.Namespace) -> int:
    from tame.config import DataConfig, load_config
    from tame.evaluation.predict import predict_list

    if (args.config is None) == (args.model is None):
        raise TameError("give --model NAME or --config FILE")
    check_output_paths([args.list, args.weights, args.config], [args.output])
    if args.crop is not None and (args.crop < 1 or args.resize is not None and args.crop > args.resize):
        raise TameError(f"--crop {args.crop} must be positive and not larger than --resize {args.resize}")
    overrides = [f"model.weights={args.weights}"] * bool(args.weights) + ["model.pretrained=false"] * args.no_pretrained
    config = load_config(args.config, overrides) if args.config else None
    data_cfg = DataConfig(
        backend=args.backend,
        batch_size=args.batch_size,
        workers=args.workers,
        resize=args.resize or (config and config.data.resize),
        crop=args.crop or (config and config.data.crop),
        interpolation=config and config.data.interpolation,
        validate=args.validate,
    )
    summary = predict_list(
        args.list,
        args.root,
        config.model if config else args.model,
        args.output,
        data_cfg=data_cfg,
        pretrained=not args.no_pretrained,
        weights=args.weights,
        device=args.device,
    )
    if summary:
        print(summary)
    return 0


def _add_synth(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("output", metavar="OUT", help="folder to write images, masks, lists and boxes.json into")
    parser.add_argument("--classes", type=int, default=6, help="number of shape classes (2..8)")
    parser.add_argument("--train-per-class", type=int, default=100)
    parser.add_argument("--val-per-class", type=int, default=20)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)


def _run_synth(args: argparse.Namespace) -> int:
    from tame.data.synthetic import make_synthetic

    made = make_synthetic(
        args.output,
        classes=args.classes,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        size=args.size,
        seed=args.seed,
        progress=True,
    )
    print(
        f"wrote {made.train_list} and {made.val_list} (image root {made.root}), boxes and masks in {made.boxes}; "
        f"classes: {', '.join(made.classes)}"
    )
    return 0


_SUBCOMMANDS = {
    "check": (_add_check, _run_check, "check a list: format, labels, files (and decoding with --decode)"),
    "make": (_add_make, _run_make, "make a list from a folder tree or a flat folder, and random subsets"),
    "predict": (_add_predict, _run_predict, "relabel a list with a classifier's predictions"),
    "synth": (_add_synth, _run_synth, "write the synthetic shapes set with boxes and masks"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="datalist_command", required=True, metavar="SUBCOMMAND")
    for name, (add, run_command, help_text) in _SUBCOMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add(command)
        command.set_defaults(datalist_run=run_command)


def run(args: argparse.Namespace) -> int:
    return args.datalist_run(args)
