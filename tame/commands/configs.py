"""The configs shipped with tame: ``tame configs`` lists them; ``tame train --config NAME`` (any ``--config``) reads
one by name from any folder. ``tame configs NAME`` prints one, to copy and edit: ``tame configs resnet50 > my.yaml``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tame.config.shipped import shipped_configs
from tame.errors import TameError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="print this shipped config (default: list them all)")
    parser.add_argument("--path", action="store_true", help="print the file's path instead of its text")


def run(args: argparse.Namespace) -> int:
    shipped = shipped_configs()
    if args.name is not None:
        name = Path(args.name).stem if Path(args.name).parent in (Path("."), Path("configs")) else args.name
        if name not in shipped:
            raise TameError(f"no shipped config {args.name!r} (shipped: {', '.join(shipped) or 'none'})")
        print(shipped[name] if args.path else shipped[name].read_text(), end="\n" if args.path else "")
        return 0
    if not shipped:
        raise TameError("no shipped configs found (a broken install: reinstall tame)")
    width = max(map(len, shipped))
    for name, path in shipped.items():
        print(f"{name:<{width}}  {path if args.path else _summary(path)}")
    return 0


def _summary(path: Path) -> str:
    """The config's first comment line: what it is for."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
