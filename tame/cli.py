"""The ``tame`` command line and ``tame-inspect``.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
this file only wires them up and turns a :class:`TameError` (or an ``OSError``: disk full, permission denied) into
one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from tame.commands.options import add_verbosity_options
from tame.distributed import launch_rank
from tame.errors import TameError
from tame.log import setup_logging

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "inspect": ("tame.commands.inspect", "list a model's layers with their feature-map shapes"),
    "datalist": ("tame.commands.datalist", "check, make, predict and synthesise list files"),
    "train": ("tame.commands.train", "train the attention mechanism (one process, torchrun or SLURM)"),
    "lr-find": ("tame.commands.lr_find", "LR range test: sweep the LR over one pass, plot it, suggest a max LR"),
    "explain": ("tame.commands.explain", "explanation maps for your own images (overlays, .npy, gallery)"),
    "eval": ("tame.commands.eval", "AD / IC at 100, 50, 15 %% (and ROAD, pointing game) of TAME or a baseline"),
    "compare": ("tame.commands.compare", "TAME against the baselines on one list: markdown + CSV table and a chart"),
    "export": ("tame.commands.export", "one ONNX / TorchScript / exported-program graph: images -> logits, class, map"),
    "runs": ("tame.commands.runs", "one table of training runs: best epoch, its AD / IC, finished or stopped"),
    "configs": ("tame.commands.configs", "the configs shipped with tame (any --config may name one)"),
    "demo": ("tame.commands.demo", "the whole method end to end on a CPU, offline (writes demo/report.html)"),
}


def _run(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    args, extra = parser.parse_known_args(argv)
    intermixed = getattr(args, "intermixed", None)  # a command's list positional that may also follow options
    if extra and intermixed and not any(item.startswith("-") for item in extra):
        setattr(args, intermixed, [*getattr(args, intermixed), *extra])
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    setup_logging(getattr(args, "verbosity", 0), rank=launch_rank())  # torchrun / SLURM rank, else 0
    try:
        return int(args.handler(args) or 0)
    except TameError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the machine's, not ours: a full disk, a read-only folder, a vanished mount
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tame", description="TAME: trainable attention mechanism for explanations")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    argv = sys.argv[1:] if argv is None else argv
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        if chosen in COMMANDS and name != chosen:  # import only the command that runs (start-up time)
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        command = sub.add_parser(
            name, help=help_text, description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        module.add_arguments(command)
        add_verbosity_options(command)
        command.set_defaults(handler=module.run)
    return _run(parser, argv)


def inspect_main(argv: list[str] | None = None) -> int:
    module = importlib.import_module("tame.commands.inspect")
    parser = argparse.ArgumentParser(
        prog="tame-inspect", description=module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    module.add_arguments(parser)
    add_verbosity_options(parser)
    parser.set_defaults(handler=module.run)
    return _run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
