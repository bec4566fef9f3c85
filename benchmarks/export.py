"""Explanation latency and throughput: PyTorch eager (``TameModel.explain``) vs the exported ONNX graph in ONNX Runtime,
on the CPU (or a GPU: ``--device cuda``), at batch 1 and batch 32, side by side in one run.

    .venv/bin/python -m benchmarks.export                   # ResNet-18, 224 px, batches 1 and 32
    .venv/bin/python -m benchmarks.export --quick           # 64 px, batches 1 and 8, 3 rounds (a check, not numbers)
    .venv/bin/python -m benchmarks.export --model resnet50 --size 224 --batches 1 32
    .venv/bin/python -m benchmarks.export --device cuda     # torch on the GPU (ONNX Runtime: see below)

On a GPU, ONNX Runtime runs on the CUDA execution provider when the installed onnxruntime has it (onnxruntime-gpu),
else on the CPU; the report names the provider used (``onnxruntime_provider``). The images start on the host for
both sides' inputs: torch's are copied to the device, ONNX Runtime copies its own.

Both sides compute the same thing: the logits and the predicted class's map for every image (one forward pass
with the feature taps and the AM). The graph is written by ``tame.export.export_model`` (dynamic batch, uint8 input,
verified against PyTorch first; the verification is printed). ONNX Runtime gets the same thread count as torch and
does not spin its idle threads (``session.intra_op.allow_spinning=0``), as OpenMP does not here
(``OMP_WAIT_POLICY=PASSIVE``): process CPU time then counts work on both sides. Random weights (nothing downloaded),
synthetic images; results go to ``benchmarks/results/export.json``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.harness import (
    add_common_options,
    compare,
    machine,
    ratio,
    resolve_device,
    set_threads,
    table,
    write_report,
)
from tame.export import export_model
from tame.models import TameModel, create_classifier


def onnx_session(path: Path, threads: int, device: torch.device | None = None):
    """An ONNX Runtime session: the CUDA provider for a GPU device when this onnxruntime has it, else the CPU."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if (
        device is not None
        and device.type == "cuda"
        and "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    ):
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
    return onnxruntime.InferenceSession(str(path), options, providers=providers)


def measure(model: TameModel, session, batch: int, size: int, repeats: int, device: torch.device) -> dict:
    """Both paths on the same uint8 images (torch gets them as float / 255 on ``device``, as the graph computes
    inside; ONNX Runtime gets the host array)."""
    generator = torch.Generator().manual_seed(batch)
    pixels = torch.randint(0, 256, (batch, 3, size, size), generator=generator, dtype=torch.uint8)
    floats = pixels.float().div(255)
    feed = {"images": pixels.numpy(), "classes": np.full(batch, -1, dtype=np.int64)}

    def eager():
        return model.explain(floats.to(device, non_blocking=True))

    explanation = eager()
    _, classes, maps = session.run(None, feed)
    timings = compare({"pytorch": eager, "onnxruntime": lambda: session.run(None, feed)}, repeats, device=device)
    result = {
        "batch": batch,
        "max_map_diff": float(np.abs(maps - explanation.maps.float().cpu().numpy()).max()),
        "classes_agree": bool((classes == explanation.classes.cpu().numpy()).all()),
        "ms_per_image": {c: {n: 1e3 * t.median_of(c) / batch for n, t in timings.items()} for c in ("cpu", "wall")},
        "pytorch_over_onnxruntime": {c: ratio(timings, "pytorch", "onnxruntime", c) for c in ("cpu", "wall")},
        "seconds": {n: t.wall for n, t in timings.items()},
        "cpu_seconds": {n: t.cpu for n, t in timings.items()},
    }
    result["images_per_s"] = {n: 1e3 / ms for n, ms in result["ms_per_image"]["wall"].items()}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--layers", nargs="+", default=["layer2", "layer3", "layer4"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, nargs="+", help="batch sizes (default 1 32; --quick: 1 8)")
    parser.add_argument("--repeats", type=int, help="timed rounds per batch size after a warm-up (default 10)")
    devices = {"device_help": "torch's device (cpu, cuda); ONNX Runtime: see the header"}
    add_common_options(parser, "export", "64 px, batches 1 and 8, 3 rounds", threads_help="threads of both", **devices)
    args = parser.parse_args(argv)
    if args.quick:
        args.size = 64
    args.batches = args.batches or ([1, 8] if args.quick else [1, 32])
    args.repeats = args.repeats or (3 if args.quick else 10)
    set_threads(args.threads)
    device = resolve_device(args.device)

    torch.manual_seed(0)
    model = TameModel(create_classifier(args.model, pretrained=False), args.layers, input_size=args.size).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        exported = export_model(model, path, input_size=args.size, dynamic_batch=True)  # on the CPU, verified
        session = onnx_session(path, args.threads, device)
    provider = session.get_providers()[0]
    print(f"exported with {exported.exporter} in {exported.seconds:.1f} s; {exported.verification.summary()}")
    model = model.to(device)
    results = [measure(model, session, batch, args.size, args.repeats, device) for batch in args.batches]

    print(
        f"Explanation (logits + predicted class's map), {args.model} {args.size} px, torch on {device}, ONNX Runtime "
        f"on {provider}, {args.threads} CPU threads; {args.repeats} interleaved rounds; medians; ratio = PyTorch time "
        "/ ONNX Runtime time (>1: ORT faster)"
    )
    rows = []
    for r in results:
        ms, fast = r["ms_per_image"], r["pytorch_over_onnxruntime"]
        rows.append([r["batch"], ms["cpu"]["pytorch"], ms["cpu"]["onnxruntime"], fast["cpu"], ms["wall"]["pytorch"],
                     ms["wall"]["onnxruntime"], fast["wall"], r["images_per_s"]["pytorch"],
                     r["images_per_s"]["onnxruntime"], f"{r['max_map_diff']:.2g}", r["classes_agree"]])  # fmt: skip
    headers = ["batch", "cpu ms/img torch", "ort", "ratio", "wall ms/img torch", "ort", "ratio", "img/s torch", "ort"]
    print(table([*headers, "max |map diff|", "classes agree"], rows))
    report = {
        "machine": machine(device) | {"onnxruntime": __import__("onnxruntime").__version__},
        "device": str(device),
        "onnxruntime_provider": provider,
        "model": args.model,
        "layers": args.layers,
        "size": args.size,
        "threads": args.threads,
        "repeats": args.repeats,
        "exporter": exported.exporter,
        "export_seconds": exported.seconds,
        "results": results,
    }
    print(f"wrote {write_report('export', report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
