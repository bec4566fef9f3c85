"""Explanation maps people can look at: overlays with a colour bar, side-by-side method figures.

Pure rendering: inputs are never changed; ``image: [3, H, W] in [0, 1]``, ``explanation: [H, W] in [0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from tame.io import atomic_path  # noqa: E402

COLOUR_MAP = "jet"
ALPHA = 0.5
METHOD_LABELS = {
    "tame": "TAME",
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "xgradcam": "XGrad-CAM",
    "scorecam": "Score-CAM",
    "ablationcam": "Ablation-CAM",
    "rise": "RISE",
    "random": "random (control)",
}


def method_label(method: str) -> str:
    """How figures and galleries name a method (``gradcam`` -> ``Grad-CAM``); unknown names as they are."""
    return METHOD_LABELS.get(method, method)


def blend(image: torch.Tensor, explanation: torch.Tensor, alpha: float = ALPHA) -> np.ndarray:
    """image [3, H, W] in [0, 1], explanation [H, W] in [0, 1] -> RGB uint8 [H, W, 3] (colour map over image)."""
    rgb = image.detach().float().cpu().permute(1, 2, 0).numpy()
    heat = plt.get_cmap(COLOUR_MAP)(explanation.detach().float().cpu().clamp(0, 1).numpy())[..., :3]
    return (np.clip((1 - alpha) * rgb + alpha * heat, 0, 1) * 255).round().astype(np.uint8)


def save_overlay(image: torch.Tensor, explanation: torch.Tensor, path: str | Path, title: str = "") -> None:
    """Write a PNG: the image, the map over it and a colour bar (0 = not used, 1 = most used)."""
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2), dpi=100, layout="constrained")
    axes[0].imshow(image.detach().float().cpu().permute(1, 2, 0).numpy())
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(blend(image, explanation))
    axes[1].set_title(title, fontsize=9)
    for axis in axes:
        axis.axis("off")
    mappable = plt.cm.ScalarMappable(cmap=COLOUR_MAP, norm=plt.Normalize(0, 1))
    fig.colorbar(mappable, ax=axes[1], fraction=0.046, pad=0.02)
    _save(fig, path)


def save_comparison(
    image: torch.Tensor,
    explanations: dict[str, torch.Tensor],
    path: str | Path,
    title: str = "",
    boxes: Sequence[Sequence[float]] = (),
) -> None:
    """One image, one panel per method on one colour scale (0..1, one colour bar); optional ground-truth boxes
    [x0, y0, x1, y1]."""
    panels = len(explanations) + 1
    fig, axes = plt.subplots(1, panels, figsize=(2.4 * panels + 0.6, 2.7), dpi=100, layout="constrained")
    axes[0].imshow(image.detach().float().cpu().permute(1, 2, 0).numpy())
    axes[0].set_title(title or "input", fontsize=9)
    for axis, (name, explanation) in zip(axes[1:], explanations.items()):
        axis.imshow(blend(image, explanation))
        axis.set_title(name, fontsize=9)
    for axis in axes:
        axis.axis("off")
        for x0, y0, x1, y1 in boxes:
            axis.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white", linewidth=1.2))
    mappable = plt.cm.ScalarMappable(cmap=COLOUR_MAP, norm=plt.Normalize(0, 1))
    fig.colorbar(mappable, ax=axes[-1], fraction=0.046, pad=0.02)
    _save(fig, path)


def save_grid(image: torch.Tensor, rows: dict[str, dict[str, torch.Tensor]], path: str | Path, title: str = "") -> None:
    """One image, one row of panels per ``rows`` entry (e.g. the class explained), one column per method, on one
    colour scale (0..1): ``rows``: row title -> method -> explanation [H, W]."""
    methods = list(next(iter(rows.values())))
    height, width = image.shape[-2:]
    panel = 2.4 * width / height
    fig, axes = plt.subplots(
        len(rows), len(methods) + 1, figsize=(panel * (len(methods) + 1) + 0.6, 2.3 * len(rows)), squeeze=False
    )
    for axes_row, (row_title, explanations) in zip(axes, rows.items()):
        axes_row[0].imshow(image.detach().float().cpu().permute(1, 2, 0).numpy())
        axes_row[0].set_title(title or "input", fontsize=8)
        axes_row[0].set_ylabel(row_title, fontsize=9)
        for axis, method in zip(axes_row[1:], methods):
            axis.imshow(blend(image, explanations[method]))
            axis.set_title(f"{method}: {row_title}", fontsize=8)
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    fig.tight_layout()
    _save(fig, path)


def _save(fig, path: str | Path) -> None:
    """Write the PNG atomically (a reader never sees half of it), then close the figure."""
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
