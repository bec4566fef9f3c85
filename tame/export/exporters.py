"""Serialise an :class:`ExplainGraph` with torch's own exporters, in memory (nothing is written here).

- ``onnx``: ``torch.onnx.export(..., dynamo=True)``; if that fails for a model, the TorchScript-based exporter
  (``dynamo=False``), and the result says which one was used. Metadata in the file's ``metadata_props``.
- ``torchscript``: ``torch.jit.trace``; metadata in the extra file ``tame.json``.
- ``exported-program``: ``torch.export.export`` (non-strict); metadata in the extra file ``tame.json``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from dataclasses import dataclass

import torch

from tame.errors import TameError
from tame.export.checksum import CHECKSUM_KEY, onnx_checksum
from tame.export.graph import INPUT_NAMES, OUTPUT_NAMES, ExplainGraph

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript", "exported-program")
MIN_OPSET, MAX_OPSET = 18, 23  # the dynamo exporter's range (its operator library starts at opset 18)
TORCHSCRIPT_EXPORTER_MAX_OPSET = 20
DEFAULT_OPSET = 18
METADATA_FILE = "tame.json"


@dataclass
class Exported:
    data: bytes
    format: str
    exporter: str  # the exporter that produced ``data``


def check_opset(opset: int) -> None:
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise TameError(f"opset {opset} is not supported: choose {MIN_OPSET}..{MAX_OPSET} (torch's ONNX exporter)")


def example_inputs(
    batch: int, input_size: int, input_dtype: torch.dtype, device: torch.device, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded images of the exported layout and classes mixing -1 (predicted) and given indices."""
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (batch, 3, input_size, input_size), generator=generator, dtype=torch.uint8)
    images = pixels if input_dtype == torch.uint8 else pixels.float().div(255)
    classes = torch.tensor([-1 if i % 2 == 0 else i % num_classes for i in range(batch)], dtype=torch.long)
    return images.to(device), classes.to(device)


def export_graph(
    graph: ExplainGraph,
    inputs: tuple[torch.Tensor, torch.Tensor],
    fmt: str,
    meta: dict[str, str],
    *,
    dynamic_batch: bool,
    opset: int = DEFAULT_OPSET,
) -> Exported:
    """The exported file's bytes (``inputs`` are examples: their batch is the fixed batch without ``dynamic_batch``;
    with it, use a batch of at least 2, as torch.export specialises a batch of 1)."""
    if fmt not in FORMATS:
        raise TameError(f"unknown export format {fmt!r}: choose {', '.join(FORMATS)}")
    graph.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' notes on tracing and axis names: verification says it all
        if fmt == "onnx":
            check_opset(opset)
            return _onnx(graph, inputs, meta, dynamic_batch, opset)
        if fmt == "torchscript":
            return _torchscript(graph, inputs, meta)
        return _exported_program(graph, inputs, meta, dynamic_batch)


def _batch_shapes(dynamic_batch: bool) -> dict | None:
    if not dynamic_batch:
        return None
    batch = torch.export.Dim("batch", min=1)
    return {name: {0: batch} for name in INPUT_NAMES}


def _onnx(graph: ExplainGraph, inputs, meta: dict[str, str], dynamic_batch: bool, opset: int) -> Exported:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the dynamo exporter's operator library)
    except ImportError as err:
        raise TameError(f"ONNX export needs {err.name}: pip install 'tame[export]'") from None
    names = {"input_names": list(INPUT_NAMES), "output_names": list(OUTPUT_NAMES), "opset_version": opset}
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its progress lines are not our output
            program = torch.onnx.export(
                graph, inputs, dynamo=True, verbose=False, dynamic_shapes=_batch_shapes(dynamic_batch), **names
            )
        proto, exporter = program.model_proto, "torch.onnx.export(dynamo=True)"
    except Exception as err:  # the dynamo exporter fails for some models: fall back to the TorchScript-based one
        if opset > TORCHSCRIPT_EXPORTER_MAX_OPSET:
            raise TameError(
                f"the dynamo ONNX exporter failed ({type(err).__name__}: {str(err).splitlines()[0][:160]}) and the "
                f"TorchScript-based one supports opsets up to {TORCHSCRIPT_EXPORTER_MAX_OPSET}, not {opset}"
            ) from None
        log.warning("the dynamo ONNX exporter failed (%s); using the TorchScript-based exporter", type(err).__name__)
        buffer = io.BytesIO()
        axes = {name: {0: "batch"} for name in (*INPUT_NAMES, *OUTPUT_NAMES)} if dynamic_batch else None
        torch.onnx.export(graph, inputs, buffer, dynamo=False, dynamic_axes=axes, **names)
        proto, exporter = onnx.load_from_string(buffer.getvalue()), "torch.onnx.export(dynamo=False)"
    props = {**meta, "exporter": exporter, "opset": str(opset)}
    onnx.helper.set_model_props(proto, props)
    digest, _ = onnx_checksum(proto.SerializeToString())
    onnx.helper.set_model_props(proto, {**props, CHECKSUM_KEY: digest})
    data = proto.SerializeToString()
    if onnx_checksum(data) != (digest, digest):  # the entry added last must leave every other byte as it was
        raise TameError("internal error: the ONNX file's checksum does not hold after writing it")
    return Exported(data, "onnx", exporter)


def _torchscript(graph: ExplainGraph, inputs, meta: dict[str, str]) -> Exported:
    traced = torch.jit.trace(graph, inputs, check_trace=False)
    buffer = io.BytesIO()
    exporter = "torch.jit.trace"
    torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: json.dumps({**meta, "exporter": exporter})})
    return Exported(buffer.getvalue(), "torchscript", exporter)


def _exported_program(graph: ExplainGraph, inputs, meta: dict[str, str], dynamic_batch: bool) -> Exported:
    program = torch.export.export(graph, inputs, dynamic_shapes=_batch_shapes(dynamic_batch), strict=False)
    buffer = io.BytesIO()
    exporter = "torch.export.export(strict=False)"
    torch.export.save(program, buffer, extra_files={METADATA_FILE: json.dumps({**meta, "exporter": exporter})})
    return Exported(buffer.getvalue(), "exported-program", exporter)
