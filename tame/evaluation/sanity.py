"""Sanity checks of an explanation method: ``tame compare --sanity-checks`` (docs/METHOD.md, "Sanity checks").

- Cascading model-parameter randomisation (Adebayo et al., NeurIPS 2018): re-initialise the classifier's top-level
  blocks from the output down (timm ResNet: fc, layer4, layer3, ..., conv1), cumulatively, and compare each
  step's map of the originally explained class with the trained model's map (Spearman rank, SSIM, HOG
  correlation: :mod:`tame.metrics.sanity`). A map that stays similar while the weights it explains are noise
  does not explain them. For TAME the first step re-initialises the attention mechanism itself: TAME's map is
  read by a trained AM from the classifier's features, so the classifier's head (fc) does not enter it at all
  (its similarity stays 1 at that step by construction), and the blocks below change the features the trained AM
  reads. The CAMs have no parameters of their own, so their cascade starts at fc.
- Random logit (Sixt et al., ICML 2020): the map of a random other class (seeded) against the map of the
  predicted class on the same image; a class-sensitive method gives dissimilar maps.

Every step re-initialises with ``reset_parameters`` (PyTorch's default initialisers) under a fixed seed; the
model's weights are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from tame import distributed
from tame.distributed import Dist
from tame.methods import create_explainer
from tame.metrics.sanity import SIMILARITIES, nan_mean
from tame.models import TameModel

SEED = 2018  # of the re-initialisations and the random classes (not 0, the seed models are often built with)
ATTENTION = "attention"  # the cascade step that re-initialises TAME's attention mechanism


def cascade_steps(model: TameModel, method: str) -> list[str]:
    """The cascade's steps, top first: the classifier's top-level blocks with parameters, output first (and the
    AM before them for TAME)."""
    blocks = [name for name, block in model.classifier.net.named_children() if any(True for _ in block.parameters())]
    return ([ATTENTION] if method == "tame" else []) + blocks[::-1]


def _reinitialise(module: torch.nn.Module) -> None:
    for part in module.modules():
        if hasattr(part, "reset_parameters"):
            part.reset_parameters()


def _similarity(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    return {name: round(nan_mean(measure(a, b)), 4) for name, measure in SIMILARITIES.items()}


def _maps(model: TameModel, method: str, options: dict, images: torch.Tensor, classes=None):
    with create_explainer(method, model, **options) as explainer:
        return explainer.explain(images, classes)


def cascading_randomisation(
    model: TameModel, method: str, images: torch.Tensor, options: dict | None = None, seed: int = SEED
) -> list[dict]:
    """images [B, 3, H, W] -> one record per cascade step: ``step`` (the block re-initialised, cumulatively) and the
    mean similarity of its maps to the trained model's (``spearman``, ``ssim``, ``hog``), for the class the
    trained model explains (its prediction)."""
    options = options or {}
    base = _maps(model, method, options, images)
    state = {name: value.clone() for name, value in model.state_dict().items()}
    records = []
    try:
        torch.manual_seed(seed)
        for step in cascade_steps(model, method):
            _reinitialise(model.attention if step == ATTENTION else getattr(model.classifier.net, step))
            maps = _maps(model, method, options, images, base.classes).maps
            records.append({"step": step, **_similarity(base.maps.cpu(), maps.cpu())})
    finally:
        model.load_state_dict(state)
    return records


def random_logit(
    model: TameModel, method: str, images: torch.Tensor, options: dict | None = None, seed: int = SEED
) -> dict[str, float]:
    """images [B, 3, H, W] -> the mean similarity of the predicted class's map and a random other class's map."""
    options = options or {}
    base = _maps(model, method, options, images)
    generator = torch.Generator().manual_seed(seed)
    shift = torch.randint(1, model.num_classes, (len(images),), generator=generator).to(base.classes.device)
    other = (base.classes + shift) % model.num_classes  # [B], uniform over the classes but the predicted one
    maps = _maps(model, method, options, images, other).maps
    return _similarity(base.maps.cpu(), maps.cpu())


def first_images(batches: Iterable, count: int, dist: Dist | None = None) -> torch.Tensor:
    """The first ``count`` images (label >= 0) of the list an evaluation's sharded batches read: [n, 3, H, W], the
    same on every rank whatever the number of ranks (each batch gathered in list order; every rank takes part)."""
    taken, total = [], 0
    for batch in batches:
        images, labels = batch[0], batch[1]
        if dist is not None and dist.distributed:
            device = images.device
            images = distributed.gather_interleaved(dist, images).to(device)
            labels = distributed.gather_interleaved(dist, labels).to(device)
        taken.append(images[labels >= 0])
        total += len(taken[-1])
        if total >= count:
            break
    return torch.cat(taken)[:count]


def sanity_checks(model: TameModel, method: str, images: torch.Tensor, options: dict | None = None) -> dict:
    """Both checks of ``method`` on ``images``: ``{"images", "cascade": [...], "random_logit": {...}}``."""
    return {
        "images": len(images),
        "cascade": cascading_randomisation(model, method, images, options),
        "random_logit": random_logit(model, method, images, options),
    }


Results = list[tuple[str, dict]]  # (method, its sanity_checks record)
NOTE = (
    "similarity (1 = identical) of each map to the trained model's: cascading randomisation (Adebayo et al. 2018, "
    "blocks re-initialised from the top, cumulatively; lower means the map depends on those weights) and random "
    "logit (Sixt et al. 2020, a random other class's map against the predicted class's; lower is more "
    "class-sensitive)"
)


def sanity_markdown(results: Results) -> list[str]:
    """Markdown lines: the random-logit similarities, then the cascade's SSIM per method and step."""
    if not results:
        return []
    lines = [
        "",
        f"Sanity checks on {results[0][1]['images']} images: {NOTE}.",
        "",
        "| method | random logit Spearman | SSIM | HOG | cascade (SSIM after each step) |",
        "|---|---|---|---|---|",
    ]
    for method, record in results:
        logit = record["random_logit"]
        cascade = ", ".join(f"{step['step']} {step['ssim']:.2f}" for step in record["cascade"])
        lines.append(f"| {method} | {logit['spearman']:.2f} | {logit['ssim']:.2f} | {logit['hog']:.2f} | {cascade} |")
    return lines


def sanity_csv(results: Results) -> str:
    """One line per method and check step: method, check (cascade or random_logit), step, the similarities."""
    lines = ["method,check,step," + ",".join(SIMILARITIES)]
    for method, record in results:
        rows = [("cascade", step) for step in record["cascade"]] + [("random_logit", record["random_logit"])]
        for check, values in rows:
            cells = [f"{values[name]:.4f}" for name in SIMILARITIES]
            lines.append(",".join([method, check, values.get("step", ""), *cells]))
    return "\n".join(lines) + "\n"
