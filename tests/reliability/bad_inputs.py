"""The bad-input corpus of the reliability tests, generated on the fly (nothing is committed or downloaded).

Every :class:`Case` is one thing a user's messy folder, list or config can hold, with the outcome each command must
give (the table in docs/RELIABILITY.md is this list):

- ``ok``: accepted (exit 0; odd images are converted to RGB);
- ``bad``: ``tame datalist check`` prints the bad line and exits 1 (its documented behaviour: every bad line listed);
- ``error``: one line ``tame: error: ...`` on stderr, exit 2, no traceback;
- ``skip``: ``tame explain`` lists the file as skipped, counts it, and explains the rest (exit 0);
- ``n/a``: the command does not read this kind of input.

The expected words of an error are in ``message`` (a regular expression, searched in the one error line).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

GOOD_IMAGES = 4  # good0.jpg ... good3.jpg in every image root: with the case's line, 2 batches of 2
NUM_CLASSES = 3


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # image | line | config | checkpoint
    outcomes: dict[str, str]  # command -> ok | bad | error | skip | n/a
    message: str = ""  # regex expected in the error line (and in `datalist check`'s report)
    file: str = ""  # image cases: the file's name in the image root
    line: str = ""  # the list line (default: "<file> 0")
    overrides: tuple[str, ...] = ()  # config cases: key=value written into the YAML file (or given on the command line)
    notes: str = ""  # for the table: what happens and why
    extra: dict = field(default_factory=dict)  # yaml: the config file's bytes; command_line: overrides as arguments


def _pixels(height: int, width: int, channels: int, seed: int, dtype=np.uint8, high: int = 256) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, high, shape, dtype=dtype)


def write_jpeg(path: Path, size: tuple[int, int] = (40, 30), seed: int = 0) -> Path:
    Image.fromarray(_pixels(size[1], size[0], 3, seed)).save(path, format="JPEG", quality=90)
    return path


def decompression_bomb_png(path: Path, side: int = 20_000) -> Path:
    """A PNG header claiming side x side 1-bit pixels (400 Mpx for 20000): what PIL refuses as a decompression bomb.

    Only the header and a tiny compressed row are written (a few hundred bytes), so making it costs nothing.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    rows = zlib.compress(b"\x00" * (1 + side // 8))  # one row of the image
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def _truncated_jpeg(path: Path) -> None:
    data = write_jpeg(path, size=(64, 48), seed=7).read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _cmyk(path: Path) -> None:
    Image.fromarray(_pixels(30, 40, 4, 1), mode="CMYK").save(path, format="JPEG")


def _png16(path: Path) -> None:
    Image.fromarray(_pixels(30, 40, 1, 2, dtype=np.uint16, high=65536)).save(path, format="PNG")


def _grey(path: Path) -> None:
    Image.fromarray(_pixels(30, 40, 1, 3), mode="L").save(path, format="JPEG")


def _rgba(path: Path) -> None:
    Image.fromarray(_pixels(30, 40, 4, 4), mode="RGBA").save(path, format="PNG")


def _one_pixel(path: Path) -> None:
    Image.new("RGB", (1, 1), (200, 30, 40)).save(path, format="PNG")


def _float_tiff(path: Path) -> None:
    Image.fromarray(np.random.default_rng(8).random((30, 40), dtype=np.float32)).save(path, format="TIFF")


def _int32_tiff(path: Path) -> None:
    Image.fromarray(_pixels(30, 40, 1, 9).astype(np.int32)).save(path, format="TIFF")


IMAGE_WRITERS = {
    "zero-byte.jpg": lambda p: p.write_bytes(b""),
    "truncated.jpg": _truncated_jpeg,
    "notes.JPEG": lambda p: p.write_bytes(b"these are my notes, not an image\n" * 8),
    "cmyk.jpg": _cmyk,
    "sixteen-bit.png": _png16,
    "grey.jpg": _grey,
    "rgba.png": _rgba,
    "one-pixel.png": _one_pixel,
    "bomb.png": decompression_bomb_png,
    "float.tif": _float_tiff,
    "int32.tif": _int32_tiff,
    "ünïcødé-猫.jpg": lambda p: write_jpeg(p, seed=5),
    "with space.jpg": lambda p: write_jpeg(p, seed=6),
}

_ACCEPTED = {"check": "ok", "check --decode": "ok", "train": "ok", "eval": "ok", "explain": "ok"}
_UNDECODABLE = {"check": "ok", "check --decode": "bad", "train": "error", "eval": "error", "explain": "skip"}
_BAD_LINE = {"check": "bad", "train": "error", "eval": "error", "explain": "n/a"}
_BAD_CONFIG = {"check": "n/a", "train": "error", "eval": "error", "explain": "error"}

CASES = [
    # -- images (each also passed to `tame explain`, next to a good image) --------------------------------------
    Case(
        "zero-byte file",
        "image",
        {**_UNDECODABLE, "check": "bad"},
        r"file is empty \(0 bytes\)",
        file="zero-byte.jpg",
        notes="the cheap check (before every run) finds it",
    ),
    Case(
        "truncated JPEG",
        "image",
        _UNDECODABLE,
        r"cannot decode: .*truncated",
        file="truncated.jpg",
        notes="found when decoded: `check --decode`, `data.validate: decode`, or the loader names file and line",
    ),
    Case(
        "non-image bytes named .JPEG",
        "image",
        _UNDECODABLE,
        r"cannot decode: cannot identify image file",
        file="notes.JPEG",
        notes="as the truncated JPEG",
    ),
    Case("CMYK JPEG", "image", _ACCEPTED, file="cmyk.jpg", notes="converted to RGB"),
    Case("16-bit PNG", "image", _ACCEPTED, file="sixteen-bit.png", notes="scaled to 8 bits, then RGB"),
    Case("grayscale JPEG", "image", _ACCEPTED, file="grey.jpg", notes="converted to RGB"),
    Case("RGBA PNG", "image", _ACCEPTED, file="rgba.png", notes="alpha dropped"),
    Case("1x1 image", "image", _ACCEPTED, file="one-pixel.png", notes="resized up like any small image"),
    Case(
        "decompression bomb (20000x20000 PNG header)",
        "image",
        _UNDECODABLE,
        r"cannot decode: Image size \(400000000 pixels\) exceeds limit",
        file="bomb.png",
        notes="PIL refuses more than 2 x 89 Mpx before allocating anything",
    ),
    Case(
        "float32 TIFF (values 0..1)",
        "image",
        _UNDECODABLE,
        r"floating-point pixels have no fixed range",
        file="float.tif",
        notes="decoded to black before; refused: convert to 8 or 16 bits (16-bit PNG/TIFF are scaled)",
    ),
    Case(
        "int32 TIFF (values 0..255)",
        "image",
        _UNDECODABLE,
        r"32-bit integer pixels have no fixed range",
        file="int32.tif",
        notes="as the float32 TIFF",
    ),
    Case("unicode file name", "image", _ACCEPTED, file="ünïcødé-猫.jpg"),
    Case(
        "space in file name",
        "image",
        {**_BAD_LINE, "explain": "ok"},
        r"expected 'path label', got 3 field\(s\)",
        file="with space.jpg",
        notes="list paths cannot hold whitespace (the reference format); `explain` takes the path as it is",
    ),
    # -- list lines ---------------------------------------------------------------------------------------------
    Case("line without a label", "line", _BAD_LINE, r"got 1 field\(s\)", line="good0.jpg"),
    Case("line with three fields", "line", _BAD_LINE, r"got 3 field\(s\)", line="good0.jpg 1 2"),
    Case("non-integer label", "line", _BAD_LINE, r"label 'one' is not a non-negative integer", line="good0.jpg one"),
    Case("line that is not UTF-8", "line", _BAD_LINE, r"not UTF-8 text", line="caf\udce9.jpg 0"),
    Case("negative label", "line", _BAD_LINE, r"label '-1' is not a non-negative integer", line="good0.jpg -1"),
    Case(
        "label too large",
        "line",
        {"check": "bad", "train": "ok", "train (label_source=list)": "error", "eval": "error", "explain": "n/a"},
        r"label 3 is out of range 0\.\.2",
        line="good0.jpg 3",
        notes="`check --num-classes 3`; train ignores list labels with the default label_source=model",
    ),
    Case(
        "missing file",
        "line",
        {"check": "bad", "train": "error", "eval": "error", "explain": "skip"},
        r"missing\.jpg: file not found",
        line="missing.jpg 0",
        notes="`explain` skips a path that does not exist",
    ),
    Case(
        "../ path out of the root",
        "line",
        _BAD_LINE,
        r"path leaves the image root",
        line="../outside.jpg 0",
        notes="the file exists outside the root and is never opened",
    ),
    Case(
        "../ hidden inside a path",
        "line",
        _BAD_LINE,
        r"path leaves the image root",
        line="sub/../../outside.jpg 0",
    ),
    Case(
        "absolute path",
        "line",
        _BAD_LINE,
        r"path leaves the image root",
        line="{outside} 0",
        notes="an existing file, refused on the text alone",
    ),
    # -- configs ------------------------------------------------------------------------------------------------
    Case(
        "config key typo",
        "config",
        _BAD_CONFIG,
        r"unknown config key train\.epochz \(did you mean train\.epochs\?\)",
        overrides=("train.epochz=2",),
    ),
    Case(
        "config section typo",
        "config",
        _BAD_CONFIG,
        r"unknown config key trian \(did you mean train\?\)",
        overrides=("trian.epochs=2",),
    ),
    Case(
        "config value of the wrong type",
        "config",
        _BAD_CONFIG,
        r"config key train\.epochs: expected an integer, got 'two'",
        overrides=("train.epochs=two",),
    ),
    Case(
        "config that is not valid YAML",
        "config",
        _BAD_CONFIG,
        r"not valid YAML \(while parsing",
        extra={"yaml": b"train: {epochs: 2\n"},
    ),
    Case(
        "config that is not UTF-8",
        "config",
        _BAD_CONFIG,
        r"not valid YAML \(.*invalid continuation byte",
        extra={"yaml": b"model: {name: caf\xe9}\n"},
    ),
    Case(
        "config with a !!python/object tag",
        "config",
        _BAD_CONFIG,
        r"not valid YAML \(could not determine a constructor for the tag .*python/object/apply:os\.system",
        extra={"yaml": b'train: !!python/object/apply:os.system ["touch {folder}/pwned-by-yaml"]\n'},
        notes="`yaml.safe_load` builds no objects: the payload never runs",
    ),
    Case(
        "override value that is not valid YAML",
        "config",
        _BAD_CONFIG,
        r"override 'train\.max_lr=\[': the value is not valid YAML",
        overrides=("train.max_lr=[",),
        notes="`key=value` on the command line (`explain` takes them among the image paths)",
        extra={"command_line": True},
    ),
    Case(
        "unknown model name",
        "config",
        _BAD_CONFIG,
        r"unknown model 'test_resnett'; did you mean test_resnet",
        overrides=("model.name=test_resnett",),
    ),
    Case(
        "unknown layer name",
        "config",
        _BAD_CONFIG,
        r"unknown layer 'layer9'; closest: layer\d",
        overrides=("model.layers=[layer2, layer9]",),
        notes="`tame-inspect` gives the same line",
    ),
]


def make_image_root(folder: Path) -> Path:
    """An image root with GOOD_IMAGES good JPEGs and one file per image case; ``outside.jpg`` next to the root."""
    root = folder / "images"
    (root / "sub").mkdir(parents=True)
    for index in range(GOOD_IMAGES):
        write_jpeg(root / f"good{index}.jpg", seed=100 + index)
    for name, write in IMAGE_WRITERS.items():
        write(root / name)
    write_jpeg(folder / "outside.jpg", seed=99)
    return root


def list_line(case: Case, folder: Path) -> str:
    if case.kind == "image":
        return f"{case.file} 0"
    return case.line.format(outside=folder / "outside.jpg")


def write_case_list(case: Case, folder: Path, name: str) -> Path:
    """The good images and the case's line (in the middle), as a list file; bytes written as is (non-UTF-8 too)."""
    lines = [f"good{index}.jpg {index % NUM_CLASSES}" for index in range(GOOD_IMAGES)]
    if case.kind in ("image", "line"):
        lines.insert(2, list_line(case, folder))
    path = folder / f"{name}.txt"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape") + b"\n")
    return path
