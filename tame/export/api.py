"""``export_model``: a trained :class:`TameModel` -> one verified file (ONNX, TorchScript or an exported program).

The file is built and verified in memory, then written to a temporary file in the target folder and renamed over
the target: a failed export, a failed verification or a full disk never leaves a partial file behind.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from tame import io
from tame.data.images import DecodeError, eval_image
from tame.errors import TameError
from tame.export.exporters import DEFAULT_OPSET, FORMATS, check_opset, example_inputs, export_graph
from tame.export.graph import INPUT_DTYPES, ExplainGraph, metadata
from tame.export.runners import open_exported
from tame.export.verify import Verification, verify_export
from tame.models import TameModel

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    path: Path
    format: str
    exporter: str
    size_bytes: int
    seconds: float
    verification: Verification


def export_model(
    model: TameModel,
    path: str | Path,
    *,
    input_size: int | None = None,
    resize: int | None = None,
    interpolation: str | None = None,
    fmt: str = "onnx",
    input_dtype: str = "uint8",
    dynamic_batch: bool = False,
    batch_size: int = 1,
    opset: int = DEFAULT_OPSET,
    verify_images: torch.Tensor | None = None,
    verify_count: int = 4,
) -> ExportResult:
    """Export ``model`` (with its loaded AM) to ``path``, verify the file against ``model.explain`` on
    ``verify_images`` (float [N, 3, S, S] in [0, 1]; default ``verify_count`` random images) and write it.

    ``input_size``: the exported square input S; ``resize``: the shorter side a runtime resizes images to before the
    centre crop; ``interpolation`` its resampling (both recorded in the metadata). Each not given is the
    classifier's own (``model.classifier.preprocessing``; an ``input_size`` other than its crop keeps its
    resize-to-crop ratio). Without ``dynamic_batch`` the graph takes batches of exactly ``batch_size``.
    """
    started = time.perf_counter()
    path = Path(path)
    check_request(path, fmt, opset, input_dtype, batch_size)
    model.eval()
    device = next(model.attention.parameters()).device
    own = model.classifier.preprocessing.with_sizes(resize, input_size, interpolation)
    input_size = own.crop
    meta = metadata(model, input_size, own.resize, input_dtype, own.interpolation)
    meta["dynamic_batch"], meta["batch_size"] = str(dynamic_batch).lower(), str(batch_size)
    example_batch = 2 if dynamic_batch else batch_size  # torch.export would specialise a batch of 1
    inputs = example_inputs(example_batch, input_size, INPUT_DTYPES[input_dtype], device, model.num_classes)
    exported = export_graph(ExplainGraph(model), inputs, fmt, meta, dynamic_batch=dynamic_batch, opset=opset)
    log.info("exported with %s (%.1f MB); verifying", exported.exporter, len(exported.data) / 1e6)
    runner = open_exported(exported.data, device)
    if verify_images is None:
        pixels = torch.randint(0, 256, (verify_count, 3, input_size, input_size), generator=torch.Generator())
        verify_images = pixels.float().div(255)
    verification = verify_export(model, runner, verify_images.to(device), input_dtype)
    if not verification.ok:
        raise TameError(f"the exported model does not match PyTorch, nothing written: {verification.summary()}")
    write_bytes_atomic(path, exported.data)
    seconds = time.perf_counter() - started
    return ExportResult(path, fmt, exported.exporter, len(exported.data), seconds, verification)


def check_request(path: Path, fmt: str, opset: int, input_dtype: str, batch_size: int) -> None:
    """The export's options, checked before anything slow (building the model, exporting) runs."""
    check_target(path)
    if fmt not in FORMATS:
        raise TameError(f"unknown export format {fmt!r}: choose {', '.join(FORMATS)}")
    if fmt == "onnx":
        check_opset(opset)
    if input_dtype not in INPUT_DTYPES:
        raise TameError(f"input dtype must be one of {', '.join(INPUT_DTYPES)}, got {input_dtype!r}")
    if batch_size < 1:
        raise TameError(f"batch size must be at least 1, got {batch_size}")


def check_target(path: Path) -> None:
    """Fail before the (slow) export when ``path`` cannot be written: a missing or read-only folder."""
    folder = path.parent
    if not folder.is_dir():
        raise TameError(f"cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TameError(f"cannot write {path}: the folder {folder} is read-only")
    io.writable_target(path)  # a folder, a device or a FIFO is refused; a symlink is written through


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """:func:`tame.io.write_bytes_atomic`, a failure as one line: no temporary file and no partial ``path`` left."""
    try:
        io.write_bytes_atomic(path, data)
    except OSError as err:
        raise TameError(f"cannot write {path}: {err.strerror or err}") from None


def read_images(paths: list[str | Path], resize: int, crop: int, interpolation: str) -> torch.Tensor:
    """Images for verification with the evaluation transform: float [N, 3, crop, crop] in [0, 1]."""
    try:
        return torch.stack([eval_image(path, resize, crop, True, interpolation) for path in paths])
    except (DecodeError, FileNotFoundError) as err:
        raise TameError(f"verification image: {err}") from None
