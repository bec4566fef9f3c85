"""Run an exported file: ``runner(images, classes) -> (logits, class, map)`` as numpy arrays, and its metadata.

ONNX files run in ONNX Runtime (CPU), TorchScript and exported programs in torch. The format is told by the bytes:
a zip archive holding ``code/`` is TorchScript, another zip archive an exported program, anything else ONNX.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tame.config.choices import Interpolation, allowed
from tame.errors import TameError
from tame.export.checksum import onnx_checksum
from tame.export.exporters import METADATA_FILE
from tame.export.graph import INPUT_NAMES, METADATA_FORMAT, parse_metadata

log = logging.getLogger(__name__)
Outputs = tuple[np.ndarray, np.ndarray, np.ndarray]


class Runner:
    """One loaded exported model: ``meta`` (parsed metadata) and ``__call__(images, classes)``."""

    def __init__(
        self, run: Callable[[np.ndarray, np.ndarray], Outputs], meta: dict, fmt: str, graph_shapes: dict | None = None
    ) -> None:
        self._run = run
        self.meta = meta
        self.format = fmt
        self.graph_shapes = graph_shapes or {}  # input_size / num_classes as the graph fixes them (ONNX)

    def __call__(self, images: np.ndarray, classes: np.ndarray) -> Outputs:
        return self._run(images, classes)

    def run_any_batch(self, images: np.ndarray, classes: np.ndarray) -> Outputs:
        """As ``__call__`` for any number of images, also on a fixed-batch export (chunks, the last one padded)."""
        fixed = int(self.meta.get("batch_size", 1))
        if self.meta.get("dynamic_batch", True) or len(images) == fixed:
            return self(images, classes)
        count = len(images)
        index = np.arange(count + (-count % fixed)) % count  # repeat images to fill the last chunk
        parts = [self(images[index[i : i + fixed]], classes[index[i : i + fixed]]) for i in range(0, len(index), fixed)]
        return tuple(np.concatenate(outputs)[:count] for outputs in zip(*parts))


def detect_format(data: bytes) -> str:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        return "onnx"
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
    return "torchscript" if any("/code/" in name for name in names) else "exported-program"


def open_exported(source: bytes | str | Path, device: str | torch.device = "cpu") -> Runner:
    """Load an exported file (its path or its bytes); a file that is not a TAME export is a TameError."""
    if isinstance(source, bytes):
        data, where = source, "the exported model"
    else:
        path = Path(source)
        if not path.is_file():
            raise TameError(f"file not found: {path}")
        data, where = path.read_bytes(), str(path)
    fmt = detect_format(data)
    unchecked = fmt == "onnx" and not check_onnx_checksum(data, where)
    try:
        runner = _onnx_runner(data) if fmt == "onnx" else _torch_runner(data, fmt, torch.device(device))
    except TameError:
        raise
    except Exception as err:  # a damaged or foreign file fails in the runtime's own way
        raise TameError(f"{where}: cannot load it as {fmt} ({type(err).__name__}: {str(err)[:160]})") from None
    if runner.meta.get("format") != METADATA_FORMAT:
        raise TameError(f"{where}: not a model exported by `tame export` (no {METADATA_FORMAT} metadata)")
    check_metadata(runner.meta, runner.graph_shapes, where)
    if unchecked:
        log.warning("%s has no checksum (exported before tame recorded one): it cannot be checked for damage", where)
    return runner


MAX_RESIZE_RATIO = 4  # resize / input_size: 256 / 224 in the reference; more would decode huge images for nothing


def check_metadata(meta: dict, graph_shapes: dict[str, int], where: str) -> None:
    """The sizes a runtime reads from the metadata must be plausible and agree with the graph (``graph_shapes``:
    the ``input_size`` and ``num_classes`` the graph itself fixes, where it does)."""
    values = {key: meta.get(key) for key in ("input_size", "resize", "num_classes")}
    for key, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TameError(f"{where}: metadata {key}={value!r} is not a positive integer; export the model again")
    for key, value in graph_shapes.items():
        if values[key] != value:
            raise TameError(f"{where}: metadata {key}={values[key]} but the graph has {value}; export the model again")
    interpolation = meta.get("interpolation", "bilinear")
    if interpolation not in allowed(Interpolation):
        choices = ", ".join(allowed(Interpolation))
        raise TameError(f"{where}: metadata interpolation={interpolation!r} is not one of {choices}; export it again")
    size, resize = values["input_size"], values["resize"]
    if not size <= resize <= MAX_RESIZE_RATIO * size:
        raise TameError(
            f"{where}: metadata resize={resize} does not fit input_size={size} (between {size} and "
            f"{MAX_RESIZE_RATIO * size}); export the model again"
        )


def check_onnx_checksum(data: bytes, where: str) -> bool:
    """The file's bytes must give the checksum ``tame export`` recorded in it; False when it records none (files of
    older exports)."""
    try:
        digest, recorded = onnx_checksum(data)
    except ValueError as err:
        raise TameError(f"{where}: not a readable ONNX file ({err})") from None
    if recorded is not None and recorded != digest:
        raise TameError(
            f"{where}: the file is damaged or was changed after `tame export` (its checksum does not match); "
            "copy it again or export it again"
        )
    return recorded is not None


def _onnx_runner(data: bytes) -> Runner:
    try:
        import onnxruntime
    except ImportError:
        raise TameError("ONNX models need onnxruntime: pip install 'tame[export]'") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    meta = parse_metadata(dict(session.get_modelmeta().custom_metadata_map))

    def run(images: np.ndarray, classes: np.ndarray) -> Outputs:
        logits, chosen, maps = session.run(None, dict(zip(INPUT_NAMES, (images, classes.astype(np.int64)))))
        return logits, chosen, maps

    return Runner(run, meta, "onnx", _onnx_shapes(session))


def _onnx_shapes(session) -> dict[str, int]:
    """The square input side and the class count, where the ONNX graph fixes them (an int, not a named axis)."""
    images, logits = session.get_inputs()[0].shape, session.get_outputs()[0].shape
    shapes = {}
    if len(images) == 4 and isinstance(images[2], int) and images[2] == images[3]:
        shapes["input_size"] = images[2]
    if len(logits) == 2 and isinstance(logits[1], int):
        shapes["num_classes"] = logits[1]
    return shapes


def _torch_runner(data: bytes, fmt: str, device: torch.device) -> Runner:
    extra = {METADATA_FILE: ""}
    if fmt == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation note
            module = torch.jit.load(io.BytesIO(data), map_location=device, _extra_files=extra)
    else:
        module = torch.export.load(io.BytesIO(data), extra_files=extra).module()
    meta = parse_metadata(json.loads(extra[METADATA_FILE] or "{}"))

    @torch.no_grad()
    def run(images: np.ndarray, classes: np.ndarray) -> Outputs:
        inputs = torch.from_numpy(images).to(device), torch.from_numpy(classes.astype(np.int64)).to(device)
        return tuple(t.cpu().numpy() for t in module(*inputs))

    return Runner(run, meta, fmt)
