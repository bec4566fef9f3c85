"""Validate list entries against the image root: the cheap check and the decode check.

- cheap (before every run, ``data.validate: cheap``): the file exists, is a regular file and is not empty; with the
  parser's own checks (format, label range, path inside the root) this catches missing, empty and misplaced files.
- decode (``--decode`` / ``data.validate: decode``): also decodes every image to RGB with PIL. This catches truncated
  or corrupt files and non-images, which would kill a DALI pipeline mid-epoch, and formats DALI cannot decode (GIF).
  DALI 2.4 itself decodes greyscale, CMYK, palette, RGBA/LA and 16-bit PNGs (tested on its CPU decoder).

Checks run in a thread pool (stat and PIL decoding release the GIL).
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from tame.data.images import DecodeError, load_rgb
from tame.data.lists import ListEntry, Problem, parse_list

_CHUNK = 256  # entries per thread-pool task


@dataclass
class ListReport:
    """What a check found: the entries that passed and every problem, ordered by line."""

    entries: list[ListEntry]
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No bad line, and at least one entry (an empty list trains and evaluates nothing)."""
        return not self.problems and bool(self.entries)

    def summary(self) -> str:
        total = len(self.entries) + len(self.problems)
        if total == 0:
            return "no entries: the list is empty"
        if self.ok:
            return f"{total} entries, all good"
        kinds = Counter(problem.kind for problem in self.problems)
        detail = ", ".join(f"{kind}: {count}" for kind, count in sorted(kinds.items()))
        return f"{total} entries, {len(self.entries)} good, {len(self.problems)} bad ({detail})"


def check_file(path: Path, decode: bool) -> tuple[str, str] | None:
    """(kind, message) of what is wrong with one image file, or None."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return "missing", "file not found"
    except OSError as err:
        return "missing", f"cannot read: {err.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return "missing", "not a regular file"
    if info.st_size == 0:
        return "empty", "file is empty (0 bytes)"
    if decode:
        try:
            load_rgb(path)
        except DecodeError as err:
            return "decode", str(err)
    return None


def _check_chunk(root: Path, entries: Sequence[ListEntry], start: int, decode: bool) -> list[tuple[int, Problem]]:
    problems = []
    for index in range(start, min(start + _CHUNK, len(entries))):
        entry = entries[index]
        found = check_file(root / entry.path, decode)
        if found is not None:
            problems.append((index, Problem(entry.line, entry.path, *found)))
    return problems


def validate_list(
    entries: Sequence[ListEntry],
    root: str | os.PathLike,
    decode: bool = False,
    workers: int = 8,
    progress: bool = False,
) -> ListReport:
    """Check that every entry's file is there (and, with ``decode``, decodes to RGB)."""
    root = Path(root)
    starts = range(0, len(entries), _CHUNK)
    found: list[tuple[int, Problem]] = []
    with (
        ThreadPoolExecutor(max_workers=max(1, workers)) as pool,
        tqdm(
            total=len(entries), desc="decode check" if decode else "check", unit="img", disable=not progress, delay=1.0
        ) as bar,
    ):
        for start, problems in zip(starts, pool.map(lambda start: _check_chunk(root, entries, start, decode), starts)):
            found.extend(problems)
            bar.update(min(_CHUNK, len(entries) - start))
    bad = {index for index, _ in found}
    good = [entry for index, entry in enumerate(entries) if index not in bad]
    return ListReport(good, [problem for _, problem in found])


def check_list(
    list_file: str | os.PathLike,
    root: str | os.PathLike,
    num_classes: int | None = None,
    decode: bool = False,
    workers: int = 8,
    progress: bool = False,
) -> ListReport:
    """Parse a list and validate its files: every bad line, not only the first."""
    entries, problems = parse_list(list_file, num_classes, one_label=True)
    report = validate_list(entries, root, decode=decode, workers=workers, progress=progress)
    report.problems = sorted(problems + report.problems, key=lambda problem: problem.line)
    return report
