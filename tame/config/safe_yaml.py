"""YAML from untrusted files and command lines, bounded: configs are small, so anything large is refused.

``yaml.safe_load`` already refuses tags that build Python objects, but it will expand an alias bomb (a few lines
that name each other, a billion items once walked), recurse until the interpreter's stack is gone on 3,000 nested
brackets, and report a tab error without its line. :func:`load_yaml` refuses the first two with one line and names
the line of every syntax error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import AliasEvent, CollectionStartEvent

from tame.errors import TameError

MAX_ALIASES = 64  # anchors/aliases a config may use (``*name`` references)
MAX_DEPTH = 32  # nested mappings/lists
MAX_BYTES = 1 << 20  # a config file is a few kB


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and nesting while composing the document."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: D102 (PyYAML's hook)
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Refused(f"more than {MAX_ALIASES} aliases (*name references)", event.start_mark)
        nested = isinstance(event, CollectionStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        try:
            return Composer.compose_node(self, parent, index)
        finally:
            if nested:
                self._depth -= 1


class _Refused(Exception):
    def __init__(self, why: str, mark) -> None:
        super().__init__(why)
        self.why, self.mark = why, mark


def _where(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "unknown position"


def load_yaml(text: str | bytes, source: str) -> Any:
    """Parse one YAML document from ``text``; any problem is a TameError naming ``source`` and the line."""
    if len(text) > MAX_BYTES:
        raise TameError(f"{source}: {len(text):,} bytes is too large for a config (at most {MAX_BYTES:,})")
    loader = None
    try:
        loader = _BoundedLoader(text)  # reads (and decodes) the first bytes already
        return loader.get_single_data()
    except _Refused as err:
        raise TameError(f"{source}: refused: {err.why} at {_where(err.mark)}") from None
    except yaml.MarkedYAMLError as err:
        first = str(err).splitlines()[0]
        raise TameError(f"{source}: not valid YAML ({first}; {_where(err.problem_mark)})") from None
    except yaml.YAMLError as err:
        raise TameError(f"{source}: not valid YAML ({str(err).splitlines()[0]})") from None
    except RecursionError:
        raise TameError(f"{source}: refused: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml_file(path: Path, what: str) -> Any:
    """:func:`load_yaml` of a file that must exist, be a regular file (``/dev/zero`` would never end) and hold
    something: an empty file is an error (for a config, the defaults would train resnet50 after minutes of
    download retries: surely not what was meant). ``what`` names the file in messages (``config file``)."""
    if not path.is_file():
        kind = "not found" if not path.exists() else "not a regular file (a folder, a FIFO or a device)"
        raise TameError(f"{what} {path}: {kind}")
    value = load_yaml(path.read_bytes(), str(path))  # bytes: YAML detects the encoding, refuses bad bytes
    if value is None:
        raise TameError(f"{what} {path} is empty (or only comments); give the settings in it")
    return value
