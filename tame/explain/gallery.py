"""Explanation maps of your own images: overlays with a colour bar, raw maps (.npy) and an index.html gallery.

Any image PIL reads (RGBA, grayscale, CMYK, 16-bit, any size). Preprocessing is the evaluation transform
(resize the shorter side, centre crop) or, with ``center_crop=False``, the whole image resized to the crop size.
Unreadable or non-image files are listed as skipped; the rest are explained by TAME and/or the baselines
(:mod:`tame.methods`), several methods side by side on one colour scale. What is written, and under which names,
is :mod:`tame.explain.files`. The CLI is ``tame explain`` (:mod:`tame.commands.explain`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from tame.config import ExplainConfig
from tame.data.class_names import class_names
from tame.data.images import DecodeError, eval_image
from tame.errors import TameError
from tame.explain.files import ImageFile, Target, class_label, list_image_files, write_gallery, write_maps
from tame.methods import Explainer, create_explainer, resolve_method
from tame.methods.base import METHODS
from tame.models import TameModel

log = logging.getLogger(__name__)


def check_spec(spec: ExplainConfig) -> ExplainConfig:
    """``spec`` with its method names resolved (in order, once each); an option no chosen method takes (``layer``,
    ``num_masks``, ``mask_batch``) is a TameError naming the methods that take it. Its numbers are checked with
    the config (:func:`tame.config.validate`)."""
    if not spec.methods:
        raise TameError("name at least one method (tame, or a baseline)")
    methods = list(dict.fromkeys(resolve_method(m) for m in spec.methods))
    for option, flag in (("layer", "--layer"), ("num_masks", "--num-masks"), ("batch_size", "--mask-batch")):
        value = spec.mask_batch if option == "batch_size" else getattr(spec, option)
        if value is not None and not any(option in _parameters(m) for m in methods):
            users = [m for m in METHODS.names() if option in _parameters(m)]
            raise TameError(f"{flag} applies to {', '.join(users)}, not to {', '.join(methods)}")
    return dataclasses.replace(spec, methods=methods)


def method_options(spec: ExplainConfig, method: str) -> dict:
    """The keyword arguments of :func:`tame.methods.create_explainer` for ``method`` from ``spec``."""
    wanted = {"layer": spec.layer, "num_masks": spec.num_masks, "batch_size": spec.mask_batch}
    return {key: value for key, value in wanted.items() if value is not None and key in _parameters(method)}


def _parameters(method: str) -> list[str]:
    return list(inspect.signature(METHODS.get(method).__init__).parameters)


@dataclass
class ExplainResult:
    entries: list[dict] = field(default_factory=list)  # one per map (tame.explain.files.write_maps)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (path, why)

    @property
    def images(self) -> int:
        return len({entry["image"] for entry in self.entries})


def explain_images(
    model: TameModel,
    paths: list[str | Path],
    out: str | Path,
    spec: ExplainConfig | None = None,
    names_file: str | None = None,
) -> ExplainResult:
    """Explain every readable image among ``paths`` (files or folders) with ``model`` (in eval mode, on its device;
    its attention weights matter only when ``tame`` is among ``spec.methods``; ``spec``: the config's ``explain``
    section, default its defaults) and write the files of :mod:`tame.explain.files` into ``out``. The images are
    preprocessed as the model's classifier is (``model.classifier.preprocessing``: resize, crop, interpolation; build
    the classifier with other sizes to explain at those). ``names_file``: the class names, as ``model.class_names``
    (None: ImageNet's for 1000 classes). Bad options, an empty path or no readable image at all are a TameError and
    nothing is written."""
    spec = check_spec(spec or ExplainConfig())
    preprocessing = model.classifier.preprocessing
    if spec.class_index is not None and not spec.class_index < model.num_classes:
        raise TameError(f"--class {spec.class_index} is out of range 0..{model.num_classes - 1}")
    out = Path(out)
    files, skipped = list_image_files(paths, skip=out)
    names = class_names(names_file, model.num_classes)
    device = next(model.parameters()).device
    result = ExplainResult(skipped=skipped)
    with contextlib.ExitStack() as stack:
        explainers = {
            method: stack.enter_context(create_explainer(method, model, **method_options(spec, method)))
            for method in spec.methods
        }
        batches = range(0, len(files), spec.batch_size)
        for start in tqdm(batches, desc="explain", unit="batch", disable=not files):
            batch_files, images = [], []
            for image_file in files[start : start + spec.batch_size]:
                try:
                    images.append(
                        eval_image(
                            image_file.path,
                            preprocessing.resize,
                            preprocessing.crop,
                            center_crop=spec.center_crop,
                            interpolation=preprocessing.interpolation,
                        )
                    )
                    batch_files.append(image_file)
                except DecodeError as err:
                    result.skipped.append((image_file.path, str(err)))
            if images:
                batch = torch.stack(images).to(device)
                result.entries += explain_batch(model, explainers, batch, batch_files, spec, names, out)
    write_gallery(out, result.entries, result.skipped)
    log.info("wrote %d maps and %s", len(result.entries), out / "index.html")
    return result


def explain_batch(
    model: TameModel,
    explainers: dict[str, Explainer],
    images: torch.Tensor,
    files: list[ImageFile],
    spec: ExplainConfig,
    names: list[str],
    out: Path,
) -> list[dict]:
    """images [B, 3, H, W]: every method's map per image and class, written by :func:`write_maps`; returns the
    gallery entries."""
    with torch.no_grad():
        probabilities = model.predict(images).float().softmax(dim=1)
    ranked = ranked_classes(probabilities, spec.class_index, spec.top_k)  # [B, k]
    entries = []
    for rank in range(ranked.shape[1]):
        classes = ranked[:, rank]
        maps = {method: explainer.explain(images, classes).maps for method, explainer in explainers.items()}
        for i, image_file in enumerate(files):
            k = int(classes[i])
            target = Target(image_file, k, class_label(names, k), float(probabilities[i, k]), rank + 1)
            entries += write_maps(out, target, images[i], {m: v[i].cpu().numpy() for m, v in maps.items()})
    return entries


def ranked_classes(probabilities: torch.Tensor, class_index: int | None, top_k: int) -> torch.Tensor:
    """The classes to explain per image: [B, 1] of ``class_index``, else the ``top_k`` most probable [B, k]."""
    if class_index is not None:
        return torch.full((len(probabilities), 1), class_index, device=probabilities.device)
    return probabilities.topk(min(top_k, probabilities.shape[1]), dim=1).indices
