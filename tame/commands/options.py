"""Command-line options that several commands (and ``tame/cli.py``) share, spelled once: the device, the verbosity,
and the flags generated from a config section's fields (:func:`add_section_flags`)."""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, Field, fields
from typing import Any

from tame.config import Config
from tame.distributed import DEVICE_CHOICES, parse_device
from tame.errors import TameError


def device_type(text: str) -> str:
    """argparse ``type=`` for ``--device``: a bad value is argparse's one-line usage error."""
    try:
        return parse_device(text)
    except TameError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_device_option(parser: argparse.ArgumentParser, default: str = "auto") -> None:
    parser.add_argument(
        "--device",
        type=device_type,
        default=default,
        metavar="DEVICE",
        help=f"{DEVICE_CHOICES} (default: {default}; auto = this process's GPU when there is one, else the CPU)",
    )


def add_verbosity_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_const", const=-1, dest="verbosity", help="warnings only")
    group.add_argument("-v", "--verbose", action="store_const", const=1, dest="verbosity", help="debug messages")
    parser.set_defaults(verbosity=0)


def add_section_flags(
    parser: argparse.ArgumentParser, section: str, skip: tuple[str, ...] = (), notes: dict[str, str] | None = None
) -> None:
    """A flag per field of the config section ``section`` (``explain``, ``eval``, ...), generated from the field:
    its name (``top_k`` -> ``--top-k``, or the ``flags`` it declares), its type (``int``, ``float``, ``str``, a list:
    ``nargs="+"``, a ``bool``: a switch) and its help, with its default. ``skip``: fields without a flag here;
    ``notes``: text a command adds to a field's help (what only it knows, e.g. the registered methods). A flag
    left out sets nothing: the config file's value (or the field's default) stays; :func:`flag_values` gives the
    ones given."""
    cls = typing.get_type_hints(Config)[section]
    hints = typing.get_type_hints(cls)
    groups: dict[str, Any] = {}
    for item in fields(cls):
        names = item.metadata.get("flags", (f"--{item.name.replace('_', '-')}",))
        if item.name in skip or not names:
            continue
        exclusive = item.metadata.get("exclusive")
        if exclusive and exclusive not in groups:
            groups[exclusive] = parser.add_mutually_exclusive_group()
        target = groups[exclusive] if exclusive else parser
        kwargs = _flag(item, hints[item.name])
        if item.name in (notes or {}):
            kwargs["help"] += f"; {notes[item.name]}"
        target.add_argument(*names, dest=f"{section}.{item.name}", default=argparse.SUPPRESS, **kwargs)


def _flag(item: Field, hint: Any) -> dict[str, Any]:
    """``add_argument``'s keywords for one field of a section (``hint``: its type)."""
    meta = item.metadata
    default = item.default_factory() if item.default_factory is not MISSING else item.default
    shown = meta.get("shown", " ".join(map(str, default)) if isinstance(default, list) else default)
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    kind = next(arg for arg in typing.get_args(hint) if arg is not type(None)) if union else hint  # X | None -> X
    if kind is bool and not meta.get("negatable"):  # a switch: --x sets True, --no-x False
        return {
            "help": meta["help"].replace("%", "%%"),
            "action": "store_const",
            "const": not meta.get("flags", ("",))[0].startswith("--no-"),
        }
    text = meta["help"].replace("%", "%%")  # argparse formats help with %
    kwargs: dict[str, Any] = {"help": text + ("" if shown is None else f" (default: {shown})")}
    if kind is bool:
        return kwargs | {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(kind) is typing.Literal:  # a choice: its values (tame.config.choices)
        kind, kwargs["choices"] = str, typing.get_args(kind)
    if typing.get_origin(kind) is list:
        kind, kwargs["nargs"] = typing.get_args(kind)[0], "+"
    kwargs["type"] = device_type if item.name == "device" else kind
    if "choices" not in kwargs:  # a choice shows its values ({onnx,torchscript,...})
        kwargs["metavar"] = item.name.upper()
    return kwargs | {k: meta[k] for k in ("nargs", "const", "metavar", "choices", "required") if k in meta}


def flag_values(args: argparse.Namespace, *sections: str) -> dict[str, Any]:
    """The section keys the command line set (``{"explain.top_k": 3}``): :func:`tame.config.load_config`'s
    ``values``, applied over the config file and its ``key=value`` overrides."""
    return {key: value for key, value in vars(args).items() if key.partition(".")[0] in sections}
