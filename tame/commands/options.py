"""Command-line options that several commands (and ``tame/cli.py``) share, spelled once: the device, the verbosity."""

from __future__ import annotations

import argparse

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
