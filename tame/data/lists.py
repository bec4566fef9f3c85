"""List files: one ``relative/path label`` per line, the image root given separately.

The reference format of the original TAME lists (``datalist/ILSVRC/*.txt``): the path and an integer label separated
by whitespace; stray leading/trailing whitespace and blank lines are ignored. A line with more than two fields is an
error (not silently a path with a space), so paths cannot contain whitespace. Paths are relative to an image root and
must stay inside it (no ``..``, no absolute paths).

This is the one parser of the package: the loaders, ``tame datalist`` and the engine all read lists through
:func:`parse_list` / :func:`read_list`, so every error names the list file and the line.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tame.errors import TameError
from tame.io import atomic_path

_LABEL = re.compile(r"[0-9]+", re.ASCII)
MAX_LABEL = 1 << 31  # a class index past this is a typo (and would overflow a label tensor)
MAX_LINE = 4096  # bytes; a longer line is malformed, and only its start is echoed


def shorten(text: str, limit: int = 80) -> str:
    """``text`` for an error message: at most ``limit`` characters, the cut marked."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


class ListEntry(NamedTuple):
    path: str  # relative to the image root, as written in the list
    label: int
    line: int  # 1-based line number in the list file (0 for entries that did not come from a file)


@dataclass(frozen=True)
class Problem:
    """One bad line (or one bad file behind a line)."""

    line: int
    path: str  # the image path as written ('' when the line could not be split)
    kind: str  # malformed | label | path | missing | empty | decode
    message: str

    def format(self, list_file: str | os.PathLike) -> str:
        where = f"{list_file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def escapes_root(path: str) -> bool:
    """True for absolute paths and paths whose ``..`` climb out of the root (checked on the text, no file access)."""
    if path.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", path):
        return True
    normal = posixpath.normpath(path.replace("\\", "/"))
    return normal == ".." or normal.startswith("../")


def parse_line(text: str, line: int, num_classes: int | None = None) -> ListEntry | Problem | None:
    """One line -> an entry, a problem, or None for a blank line."""
    if line == 1:
        text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    if len(text) > MAX_LINE:
        return Problem(line, "", "malformed", f"line of {len(text):,} characters: {shorten(text.strip())!r}")
    fields = text.split()
    if not fields:
        return None
    if len(fields) != 2:
        got = f"{len(fields)} field(s): {shorten(text.strip())!r}"
        return Problem(line, "", "malformed", f"expected 'path label', got {got}")
    path, label_text = fields
    if "\x00" in path or not path.isprintable():
        return Problem(line, shorten(repr(path)), "path", "path holds a control character (NUL, escape, ...)")
    if not _LABEL.fullmatch(label_text):
        return Problem(line, path, "malformed", f"label {shorten(label_text)!r} is not a non-negative integer")
    if len(label_text) > 10 or int(label_text) >= MAX_LABEL:
        return Problem(line, path, "label", f"label {shorten(label_text)} is not a plausible class index")
    label = int(label_text)
    if num_classes is not None and label >= num_classes:
        return Problem(line, path, "label", f"label {label} is out of range 0..{num_classes - 1}")
    if escapes_root(path):
        return Problem(line, path, "path", "path leaves the image root (absolute or '..'); paths must be relative")
    return ListEntry(path, label, line)


def parse_list(
    list_file: str | os.PathLike, num_classes: int | None = None, *, one_label: bool | None = None
) -> tuple[list[ListEntry], list[Problem]]:
    """All good entries and all bad lines of a list file (a missing or unreadable file is a :class:`TameError`).

    ``one_label``: an image listed again with another label is a bad line (default: where labels are read, i.e.
    ``num_classes`` is given; a training that ignores the list's labels is not stopped by them)."""
    one_label = num_classes is not None if one_label is None else one_label
    list_file = Path(list_file)
    if not list_file.exists():
        raise TameError(f"list file not found: {list_file}")
    if not list_file.is_file():
        raise TameError(f"list file {list_file} is not a regular file (a folder, a FIFO or a device)")
    if num_classes is not None and num_classes < 1:
        raise TameError(f"number of classes must be positive, got {num_classes}")
    entries: list[ListEntry] = []
    problems: list[Problem] = []
    labels: dict[str, ListEntry] = {}  # normalised path -> its first entry: one image, one label
    with open(list_file, "rb") as handle:
        for line, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                problems.append(Problem(line, "", "malformed", "not UTF-8 text"))
                continue
            result = parse_line(text, line, num_classes)
            if isinstance(result, ListEntry):
                first = labels.setdefault(_image_key(result.path), result) if one_label else result
                if first.label != result.label:
                    message = f"label {result.label}, but line {first.line} gives this image label {first.label}"
                    problems.append(Problem(line, result.path, "label", message))
                    continue
                entries.append(result)
            elif result is not None:
                problems.append(result)
    return entries, problems


def _image_key(path: str) -> str:
    """One spelling per image (``./a.jpg``, ``b/../a.jpg`` and ``a.jpg`` are one); normpath only where needed (a
    million lines: 2 s with it everywhere)."""
    return posixpath.normpath(path) if "." in path.rpartition("/")[0] or "//" in path else path


def first_problem_error(list_file: str | os.PathLike, problems: list[Problem], root: str | os.PathLike | None) -> str:
    """The one-line error for a list with bad lines: the first of them, and how to see the rest."""
    more = f" (and {len(problems) - 1} more bad lines)" if len(problems) > 1 else ""
    root_arg = f" --root {root}" if root is not None else ""
    return f"{problems[0].format(list_file)}{more}; run `tame datalist check {list_file}{root_arg}` to see every one"


def read_list(
    list_file: str | os.PathLike, root: str | os.PathLike | None = None, num_classes: int | None = None
) -> list[ListEntry]:
    """Parse a list file; any bad line is a :class:`TameError` naming the file and line.

    ``root`` (the image root the paths are relative to) is checked to be a folder; ``num_classes`` bounds labels.
    """
    if root is not None and not Path(root).is_dir():
        raise TameError(f"image root not found: {root} (the folder that the paths in {list_file} are relative to)")
    entries, problems = parse_list(list_file, num_classes)
    if problems:
        raise TameError(first_problem_error(list_file, problems, root))
    if not entries:
        raise TameError(f"{list_file}: the list has no entries")
    return entries


def write_list(list_file: str | os.PathLike, entries: Iterable[tuple[str, int] | ListEntry]) -> int:
    """Write ``path label`` lines atomically (temp file + rename); returns the number of lines."""
    count = 0
    with atomic_path(list_file) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        for entry in entries:
            path, label = entry[0], entry[1]
            if escapes_root(path) or path.split() != [path]:
                raise TameError(
                    f"cannot write {path!r} to {list_file}: list paths must be relative, inside the root, "
                    "and without whitespace (rename the file)"
                )
            handle.write(f"{path} {label}\n")
            count += 1
    return count
