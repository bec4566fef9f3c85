"""Class names for any classifier: a file named by ``model.class_names``, else ImageNet's for 1000 classes.

The file holds one name per line, in class order, or ``LABEL NAME`` per line (the ``classes.txt`` that
``tame datalist synth`` writes), with every label 0..K-1 exactly once. Blank lines at the end are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from tame.config import expand_path
from tame.errors import TameError

_LABELLED = re.compile(r"(\d+)\s+(\S.*)")


def class_names(path: str | Path | None, num_classes: int) -> list[str]:
    """The names of classes 0..num_classes-1: from ``path`` when given (see :func:`load_class_names`), else
    ImageNet's for a 1000-class classifier, else none (callers then write ``class K``)."""
    if path is not None:
        return load_class_names(expand_path(str(path), "model.class_names"), num_classes)
    return imagenet_class_names() if num_classes == 1000 else []


def load_class_names(path: str | Path, num_classes: int) -> list[str]:
    """Read a class-names file; a missing file, an empty line or a count other than ``num_classes`` is a
    TameError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise TameError(f"class names file not found: {path} (config key model.class_names)")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise TameError(f"{path}: class names must be UTF-8 text ({err.reason} at byte {err.start})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            raise TameError(f"{path}:{number}: empty line (one class name per line, in class order)")
    names = _labelled_names(lines) or [line.strip() for line in lines]
    if len(names) != num_classes:
        raise TameError(f"{path}: {len(names)} class names, but the classifier has {num_classes} classes")
    return names


def _labelled_names(lines: list[str]) -> list[str] | None:
    """``LABEL NAME`` lines with the labels 0..K-1, each once, as names in label order; None for any other file."""
    matches = [_LABELLED.fullmatch(line.strip()) for line in lines]
    if not matches or not all(matches):
        return None
    by_label = {int(m.group(1)): m.group(2).strip() for m in matches}
    if sorted(by_label) != list(range(len(lines))):
        return None
    return [by_label[label] for label in range(len(lines))]


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class descriptions from timm; none with a timm too old to have them."""
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo()
        return [info.index_to_description(i) for i in range(1000)]
    except Exception:  # older timm: names are a nicety, not a requirement
        return []
