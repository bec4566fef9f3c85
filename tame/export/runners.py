"""Run an exported file: ``runner(images, classes) -> (logits, class, map)`` as numpy arrays, and its metadata.

ONNX files run in ONNX Runtime (CPU), TorchScript and exported programs in torch. The format is told by the bytes:
a zip archive holding ``code/`` is TorchScript, another zip archive an exported program, anything else ONNX.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tame.errors import TameError
from tame.export.exporters import METADATA_FILE
from tame.export.graph import INPUT_NAMES, METADATA_FORMAT, parse_metadata

Outputs = tuple[np.ndarray, np.ndarray, np.ndarray]


class Runner:
    """One loaded exported model: ``meta`` (parsed metadata) and ``__call__(images, classes)``."""

    def __init__(self, run: Callable[[np.ndarray, np.ndarray], Outputs], meta: dict, fmt: str) -> None:
        self._run = run
        self.meta = meta
        self.format = fmt

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
    try:
        runner = _onnx_runner(data) if fmt == "onnx" else _torch_runner(data, fmt, torch.device(device))
    except TameError:
        raise
    except Exception as err:  # a damaged or foreign file fails in the runtime's own way
        raise TameError(f"{where}: cannot load it as {fmt} ({type(err).__name__}: {str(err)[:160]})") from None
    if runner.meta.get("format") != METADATA_FORMAT:
        raise TameError(f"{where}: not a model exported by `tame export` (no {METADATA_FORMAT} metadata)")
    return runner


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

    return Runner(run, meta, "onnx")


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
