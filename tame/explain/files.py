"""The files of ``tame explain``, one set of rules for the PyTorch and the ONNX Runtime paths: which images the
given paths name, one output name per image, and what is written per map (overlay PNG + raw ``.npy``), per image
and class (the methods side by side, one colour scale) and per run (``index.html``, ``explanations.json``).

Output names keep the image's path inside the folder it was found in (``photos/`` holding ``trip/cat.jpg`` gives
``OUT/trip/cat_class281.png``); where two images would share a name (``cat.jpg`` and ``cat.png``, or the
``cat.jpg`` of two folders, also when only the letter case differs) the suffix is kept (``cat.jpg_class281.png``)
and, where that still collides, ``-2``, ``-3``, ... is added in input order. No map overwrites another.
"""

from __future__ import annotations

import html
import io
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import numpy as np
import torch

from tame.data.images import IMAGE_SUFFIXES
from tame.errors import TameError
from tame.io import write_bytes_atomic, write_text_atomic
from tame.viz.overlay import method_label, save_comparison, save_overlay

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageFile:
    path: Path  # the file as found
    name: str  # its output name (POSIX, no suffix unless needed), unique within the run


@dataclass(frozen=True)
class Target:
    """One image and class whose maps are written: its class index, label (name and index), probability and rank
    among the explained classes (1 = the most probable)."""

    image: ImageFile
    index: int
    label: str
    probability: float
    rank: int


def list_image_files(
    paths: list[str | Path], skip: str | Path | None = None
) -> tuple[list[ImageFile], list[tuple[Path, str]]]:
    """Files named, and image files inside named folders (recursively, sorted; the folder ``skip`` -- the output
    folder -- is left out), each once, with unique output names; plus (path, reason) for what was skipped.
    An empty path is a TameError (it would mean the current folder)."""
    if any(str(given) == "" for given in paths):
        raise TameError("an empty path names no image (give . for the current folder)")
    skip_dir = Path(skip).resolve() if skip is not None else None
    found: list[tuple[Path, PurePosixPath]] = []
    skipped: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for given in map(Path, paths):
        if given.is_dir() and skip_dir is not None and given.resolve().is_relative_to(skip_dir):
            skipped.append((given, "the output folder (--out) or inside it: give another --out"))
        elif given.is_dir():
            for path in _walk(given, skip_dir, skipped):
                real = _real_file(path)
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    skipped.append((path, "not an image file name"))
                elif real is None:
                    skipped.append((path, "a broken symlink or a symlink loop"))
                elif real not in seen:
                    seen.add(real)
                    found.append((path, PurePosixPath(path.relative_to(given).as_posix())))
        elif given.is_file():
            if given.resolve() not in seen:
                seen.add(given.resolve())
                found.append((given, PurePosixPath(given.name)))
        elif given.is_symlink():
            skipped.append((given, "a broken symlink or a symlink loop"))
        else:
            skipped.append((given, "no such file or folder"))
    names = output_names([relative for _, relative in found])
    return [ImageFile(path, name) for (path, _), name in zip(found, names)], skipped


def _walk(folder: Path, skip_dir: Path | None, skipped: list[tuple[Path, str]]) -> list[Path]:
    """Every file under ``folder``, sorted, without descending into ``skip_dir``. Symlinks to folders are followed
    (a folder of links is a common way to gather images), each real folder once: a link back to a folder already
    read (a cycle) is added to ``skipped``."""
    files, visited = [], {os.path.realpath(folder)}
    for parent, dirs, names in os.walk(folder, followlinks=True):
        kept = []
        for name in dirs:
            real = os.path.realpath(Path(parent, name))
            if skip_dir is not None and Path(real) == skip_dir:
                log.info("not reading %s: it is the output folder", skip_dir)
            elif real in visited:
                skipped.append((Path(parent, name), "a folder already read (reached again through a symlink)"))
            else:
                visited.add(real)
                kept.append(name)
        dirs[:] = kept
        files += [Path(parent, name) for name in names]
    return sorted(files)


def _real_file(path: Path) -> Path | None:
    """Where ``path`` leads, or None for a broken symlink or a symlink loop (resolve() raises on a loop)."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return real


def shown(path: str | Path) -> str:
    """``path`` as text any terminal or UTF-8 page can show: bytes of a file name that are not UTF-8 (kept by
    Python as surrogates) become U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


def output_names(relative: list[PurePosixPath]) -> list[str]:
    """Unique output names (case-insensitively) for images at these relative paths; see the module docstring."""
    plain = [path.with_suffix("").as_posix() if path.suffix else path.as_posix() for path in relative]
    counts = Counter(name.casefold() for name in plain)
    wanted = [name if counts[name.casefold()] == 1 else path.as_posix() for name, path in zip(plain, relative)]
    names, taken = [], set()
    for name in wanted:
        unique, number = name, 1
        while unique.casefold() in taken:
            number += 1
            unique = f"{name}-{number}"
        taken.add(unique.casefold())
        names.append(unique)
    return names


def class_label(names: list[str], k: int) -> str:
    return f"{names[k]} ({k})" if names else f"class {k}"


def write_maps(out: Path, target: Target, image: torch.Tensor, maps: dict[str, np.ndarray]) -> list[dict]:
    """Write each method's map of ``target`` (``maps``: method -> [H, W] in [0, 1]) as ``.npy`` and overlay PNG,
    and with several methods one figure of them side by side; returns the gallery entries, one per map.
    ``image``: the preprocessed image [3, H, W] in [0, 1]."""
    stem = f"{target.image.name}_class{target.index}"
    title = f"{target.label}  p={target.probability:.3f}"
    comparison = f"{stem}_methods.png" if len(maps) > 1 else None
    entries = []
    for method, explanation in maps.items():
        file = stem if method == "tame" else f"{stem}_{method}"
        save_npy(out / f"{file}.npy", explanation.astype(np.float32))
        overlay_title = title if list(maps) == ["tame"] else f"{method_label(method)}: {title}"
        save_overlay(image, torch.from_numpy(explanation), out / f"{file}.png", title=overlay_title)
        entry = {"image": str(target.image.path), "class": target.index, "name": target.label}
        entry |= {"probability": target.probability, "rank": target.rank, "method": method}
        entries.append(entry | {"overlay": f"{file}.png", "map": f"{file}.npy", "comparison": comparison})
    if comparison is not None:
        panels = {method_label(method): torch.from_numpy(explanation) for method, explanation in maps.items()}
        save_comparison(image, panels, out / comparison, title=title)
    return entries


def save_npy(path: Path, array: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes_atomic(path, buffer.getvalue())


def write_gallery(out: Path, entries: list[dict], skipped: list[tuple[Path, str]]) -> None:
    """index.html: one card per image and class (the methods side by side, or the one overlay) with links to every
    map, and the list of skipped files; explanations.json: every entry. No map at all is a TameError (and nothing
    is written)."""
    if not entries:
        first = f"; {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        raise TameError(f"no readable images among the given paths ({len(skipped)} skipped{first})")
    cards: dict[tuple[str, int], list[dict]] = {}
    for entry in entries:
        cards.setdefault((entry["image"], entry["class"]), []).append(entry)
    methods = list(dict.fromkeys(entry["method"] for entry in entries))
    skipped_html = "".join(f"<li>{html.escape(shown(p))}: {html.escape(shown(w))}</li>" for p, w in skipped)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>Explanation maps</title>
<style>body{{font-family:sans-serif;margin:1.5em}} figure{{display:inline-block;margin:.5em;width:{_width(methods)}px}}
img{{width:100%}} figcaption{{font-size:.85em}}</style></head><body>
<h1>Explanation maps: {html.escape(", ".join(method_label(m) for m in methods))}</h1>
<p>{len(entries)} maps. Colour: 0 (blue, unused) to 1 (red, most used), the same scale for every method.</p>
{chr(10).join(_card(group) for group in cards.values())}
{f"<h2>Skipped ({len(skipped)})</h2><ul>{skipped_html}</ul>" if skipped else ""}
</body></html>
"""
    write_text_atomic(out / "index.html", page)
    record = {"maps": entries, "skipped": [[str(p), w] for p, w in skipped]}
    write_text_atomic(out / "explanations.json", json.dumps(record, indent=1))


def _width(methods: list[str]) -> int:
    return 420 if len(methods) == 1 else 240 * (len(methods) + 1)


def _card(group: list[dict]) -> str:
    """One image and class: the comparison figure (several methods) or the overlay, then a link to each map."""
    first = group[0]
    picture = first["comparison"] or first["overlay"]
    links = " &middot; ".join(
        f'<a href="{_href(e["overlay"])}">{html.escape(method_label(e["method"]))}</a> '
        f'(<a href="{_href(e["map"])}">map</a>)'
        for e in group
    )
    return (
        f'<figure><img src="{_href(picture)}" alt="{html.escape(first["name"])}">'
        f"<figcaption><b>{html.escape(shown(first['image']))}</b><br>#{first['rank']} {html.escape(first['name'])} "
        f"&middot; p = {first['probability']:.3f}<br>{links}</figcaption></figure>"
    )


def _href(file: str) -> str:
    return html.escape(quote(os.fsencode(file)))  # the name's bytes, also where they are not UTF-8
