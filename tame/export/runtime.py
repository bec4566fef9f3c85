"""``tame explain --runtime onnx model.onnx IMAGES...``: the exported graph explains images in ONNX Runtime and
writes what ``tame explain`` writes (overlay PNG + raw .npy per image and class, index.html, explanations.json).

Input size, resize and class count come from the file's metadata; the PyTorch classifier and AM are not loaded.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from tame.data.images import DecodeError, eval_image
from tame.errors import TameError
from tame.explain import class_names, list_image_files, save_npy, write_gallery
from tame.export.runners import Runner, open_exported
from tame.export.verify import as_input
from tame.viz.overlay import save_overlay


def explain_with_onnx(
    model_path: str | Path,
    image_paths: list[str],
    out_dir: str | Path,
    top_k: int = 1,
    class_index: int | None = None,
    no_crop: bool = False,
    batch_size: int = 16,
) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Explain the images (files or folders) with an exported ONNX model; returns (gallery entries, skipped files)
    exactly as ``tame explain`` collects them."""
    runner = open_exported(model_path)
    if runner.format != "onnx":
        raise TameError(f"{model_path}: a {runner.format} file, not ONNX (--runtime onnx runs ONNX files)")
    num_classes = int(runner.meta["num_classes"])
    if top_k < 1:
        raise TameError(f"--top-k must be at least 1, got {top_k}")
    if class_index is not None and not 0 <= class_index < num_classes:
        raise TameError(f"--class {class_index} is out of range 0..{num_classes - 1}")
    files, skipped = list_image_files(image_paths)
    names = class_names(SimpleNamespace(num_classes=num_classes))  # it only reads the class count
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size, resize = int(runner.meta["input_size"]), int(runner.meta["resize"])
    entries: list[dict] = []
    for start in range(0, len(files), batch_size):
        batch_files, images = [], []
        for path in files[start : start + batch_size]:
            try:
                images.append(eval_image(path, resize, size, center_crop=not no_crop))
                batch_files.append(path)
            except DecodeError as err:
                skipped.append((path, str(err)))
        if images:
            ranked = (class_index, top_k)
            entries += explain_batch(runner, torch.stack(images), batch_files, ranked, names, out)
    write_gallery(out, entries, skipped)
    return entries, skipped


def explain_batch(
    runner: Runner,
    images: torch.Tensor,
    files: list[Path],
    ranked: tuple[int | None, int],
    names: list[str],
    out: Path,
) -> list[dict]:
    """One pass for the predicted class (and its probabilities), one more per further rank or for a given class;
    writes overlay PNG + .npy per image and class and returns the gallery entries."""
    class_index, top_k = ranked
    feed = as_input(images, runner.meta["input_dtype"])
    logits, predicted, maps = runner.run_any_batch(feed, np.full(len(images), -1, dtype=np.int64))
    probabilities = torch.from_numpy(logits).float().softmax(dim=1)
    if class_index is not None:
        order = torch.full((len(images), 1), class_index)
    else:
        order = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1).indices  # [B, k]
    entries = []
    for rank in range(order.shape[1]):
        classes = order[:, rank].numpy()
        if not (rank == 0 and np.array_equal(classes, predicted)):  # the first pass explained the prediction
            maps = runner.run_any_batch(feed, classes.astype(np.int64))[2]
        for i, path in enumerate(files):
            k = int(classes[i])
            stem = f"{path.stem}_class{k}"
            label = f"{names[k]} ({k})" if names else f"class {k}"
            prob = float(probabilities[i, k])
            save_npy(out / f"{stem}.npy", maps[i].astype(np.float32))
            save_overlay(images[i], torch.from_numpy(maps[i]), out / f"{stem}.png", title=f"{label}  p={prob:.3f}")
            entry = {"image": str(path), "class": k, "name": label, "probability": prob, "rank": rank + 1}
            entries.append(entry | {"overlay": f"{stem}.png", "map": f"{stem}.npy"})
    return entries
