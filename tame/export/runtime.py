"""``tame explain --runtime onnx model.onnx IMAGES...``: the exported graph explains images in ONNX Runtime and
writes what ``tame explain`` writes, through the same functions (:mod:`tame.explain.files`: the same unique output
names, overlay PNG + raw .npy per image and class, index.html, explanations.json).

Input size, resize and class count come from the file's metadata; the PyTorch classifier and AM are not loaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tame.data.class_names import class_names
from tame.data.images import DecodeError, eval_image
from tame.errors import TameError
from tame.explain.files import ImageFile, Target, class_label, list_image_files, write_gallery, write_maps
from tame.explain.gallery import ranked_classes
from tame.export.runners import Runner, open_exported
from tame.export.verify import as_input


def explain_with_onnx(
    model_path: str | Path,
    image_paths: list[str],
    out_dir: str | Path,
    top_k: int = 1,
    class_index: int | None = None,
    no_crop: bool = False,
    batch_size: int = 16,
    class_names_file: str | None = None,
) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Explain the images (files or folders) with an exported ONNX model; returns (gallery entries, skipped files)
    exactly as ``tame explain`` collects them. ``class_names_file``: as ``model.class_names``."""
    if top_k < 1 or batch_size < 1:
        raise TameError(f"--top-k and --batch-size must be at least 1, got {top_k} and {batch_size}")
    runner = open_exported(model_path)
    if runner.format != "onnx":
        raise TameError(f"{model_path}: a {runner.format} file, not ONNX (--runtime onnx runs ONNX files)")
    num_classes = int(runner.meta["num_classes"])
    if class_index is not None and not 0 <= class_index < num_classes:
        raise TameError(f"--class {class_index} is out of range 0..{num_classes - 1}")
    out = Path(out_dir)
    files, skipped = list_image_files(image_paths, skip=out)
    names = class_names(class_names_file, num_classes)
    size, resize = int(runner.meta["input_size"]), int(runner.meta["resize"])
    interpolation = runner.meta.get("interpolation", "bilinear")  # files exported before it was recorded: bilinear
    entries: list[dict] = []
    for start in range(0, len(files), batch_size):
        batch_files, images = [], []
        for image_file in files[start : start + batch_size]:
            try:
                images.append(eval_image(image_file.path, resize, size, not no_crop, interpolation))
                batch_files.append(image_file)
            except DecodeError as err:
                skipped.append((image_file.path, str(err)))
        if images:
            ranked = (class_index, top_k)
            entries += explain_batch(runner, torch.stack(images), batch_files, ranked, names, out)
    write_gallery(out, entries, skipped)
    return entries, skipped


def explain_batch(
    runner: Runner,
    images: torch.Tensor,
    files: list[ImageFile],
    ranked: tuple[int | None, int],
    names: list[str],
    out: Path,
) -> list[dict]:
    """One pass for the predicted class (and its probabilities), one more per further rank or for a given class;
    writes the maps through :func:`tame.explain.files.write_maps` and returns the gallery entries."""
    class_index, top_k = ranked
    feed = as_input(images, runner.meta["input_dtype"])
    logits, predicted, maps = runner.run_any_batch(feed, np.full(len(images), -1, dtype=np.int64))
    probabilities = torch.from_numpy(logits).float().softmax(dim=1)
    order = ranked_classes(probabilities, class_index, top_k)  # [B, k]
    entries = []
    for rank in range(order.shape[1]):
        classes = order[:, rank].numpy()
        if not (rank == 0 and np.array_equal(classes, predicted)):  # the first pass explained the prediction
            maps = runner.run_any_batch(feed, classes.astype(np.int64))[2]
        for i, image_file in enumerate(files):
            k = int(classes[i])
            target = Target(image_file, k, class_label(names, k), float(probabilities[i, k]), rank + 1)
            entries += write_maps(out, target, images[i], {"tame": maps[i]})
    return entries
