"""Make list files: from an ImageFolder-style tree, from a flat folder plus a label file, and seeded subsets.

- Tree: ``ROOT/<class>/**/<image>``; labels are the ImageNet-1k indices when every class folder is an ImageNet synset
  (``n01440764`` -> 0, the order of ``timm.data.ImageNetInfo``), else the sorted folder names (torchvision's
  ``ImageFolder`` order). Paths are relative to ROOT.
- Flat: every image directly in (or below) a folder, labelled by a label file in list format (``name label``).
- Subsets: disjoint random subsets of a list drawn with a seed, as ``Validation_2000.txt`` and
  ``Evaluation_2000.txt`` were drawn from the ImageNet validation set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tame.data.images import IMAGE_SUFFIXES
from tame.data.lists import ListEntry, read_list
from tame.errors import TameError
from tame.io import write_text_atomic


def _images_under(folder: Path) -> list[str]:
    """Image files below ``folder`` (following links), as sorted POSIX paths relative to it."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        relative = Path(dirpath).relative_to(folder)
        found.extend((relative / name).as_posix() for name in filenames if name.lower().endswith(IMAGE_SUFFIXES))
    for path in found:
        if path.split() != [path]:
            raise TameError(f"{folder / path}: list paths cannot contain whitespace; rename the file")
    return sorted(found)


def class_labels(names: Sequence[str]) -> dict[str, int]:
    """Class folder name -> label: ImageNet-1k indices if all names are ImageNet synsets, else sorted order."""
    from timm.data import ImageNetInfo

    synsets = {name: index for index, name in enumerate(ImageNetInfo().label_names())}
    if names and all(name in synsets for name in names):
        return {name: synsets[name] for name in names}
    return {name: label for label, name in enumerate(sorted(names))}


def list_from_tree(root: str | os.PathLike) -> tuple[list[ListEntry], dict[str, int]]:
    """Entries of an ImageFolder-style tree (sorted by path) and the class -> label mapping."""
    root = Path(root)
    if not root.is_dir():
        raise TameError(f"image folder not found: {root}")
    folders = {entry.name: _images_under(Path(entry.path)) for entry in os.scandir(root) if entry.is_dir()}
    images = {name: paths for name, paths in sorted(folders.items()) if paths}
    if not images:
        raise TameError(f"{root}: no class folders with images (expected ROOT/<class>/<image>)")
    labels = class_labels(list(images))
    entries = [ListEntry(f"{name}/{path}", labels[name], 0) for name, paths in images.items() for path in paths]
    return entries, labels


def write_classes(path: str | os.PathLike, labels: dict[str, int]) -> None:
    """Write ``label class`` lines (the class -> label mapping of :func:`list_from_tree`), atomically."""
    write_text_atomic(path, "".join(f"{label} {name}\n" for name, label in labels.items()))


def list_from_flat(folder: str | os.PathLike, label_file: str | os.PathLike) -> tuple[list[ListEntry], int]:
    """Entries for every image under ``folder``, labelled by ``label_file`` (``name label`` lines, names relative to
    the folder); returns them and the number of labelled names that have no image."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TameError(f"image folder not found: {folder}")
    labels = {entry.path: entry.label for entry in read_list(label_file)}
    images = _images_under(folder)
    unlabelled = [path for path in images if path not in labels]
    if unlabelled:
        raise TameError(
            f"{folder / unlabelled[0]}: no label in {label_file} ({len(unlabelled)} of {len(images)} images have none)"
        )
    if not images:
        raise TameError(f"{folder}: no images found (looked for {', '.join(IMAGE_SUFFIXES)})")
    return [ListEntry(path, labels[path], 0) for path in images], len(labels) - len(images)


def random_subsets(entries: Sequence[ListEntry], sizes: Sequence[int], seed: int) -> list[list[ListEntry]]:
    """Disjoint random subsets of the given sizes (in drawn order), the same for the same seed."""
    if any(size < 1 for size in sizes) or sum(sizes) > len(entries):
        raise TameError(f"subsets of {' + '.join(map(str, sizes))} samples do not fit in a list of {len(entries)}")
    if seed < 0:
        raise TameError(f"--seed must not be negative, got {seed}")
    order = np.random.default_rng(seed).permutation(len(entries))
    bounds = np.cumsum([0, *sizes])
    return [[entries[i] for i in order[start:stop]] for start, stop in zip(bounds[:-1], bounds[1:])]
