"""The demo's stand-in for a pretrained ImageNet model: a small timm CNN trained from scratch on the synthetic set."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from tame.config import DataConfig
from tame.data.loaders import build_loader
from tame.distributed import Dist
from tame.errors import TameError
from tame.io import save_atomic
from tame.models import create_classifier


@dataclass(frozen=True)
class ClassifierRecipe:
    name: str = "test_resnet"
    epochs: int = 12
    max_lr: float = 5e-3
    weight_decay: float = 0.05
    batch_size: int = 32
    label_smoothing: float = 0.1
    seed: int = 0
    # Blank images (all zero) appended to each batch, as this share of it, with a uniform target: a TAME mask
    # multiplies the image, so a classifier that calls a black image some class lets TAME explain that class with
    # an empty mask (docs/DEMO_FINDINGS.md). 0: plain training.
    blank_fraction: float = 0.0
    # Shares of each batch (in place, of the real images) shown with their *background* blacked out by a random
    # coarse grid (the object kept; label kept) and with their *object* blacked out (a coarse blob over it; uniform
    # target): "object on black" becomes in-distribution and "background with an object-shaped hole" carries no
    # class evidence, so TAME cannot explain a class by the background (docs/DEMO_FINDINGS.md). Needs the object
    # masks of the synthetic set (boxes.json beside the training list). 0: off.
    occlusion_fraction: float = 0.0
    hidden_fraction: float = 0.0
    # Share of each batch (in place) dimmed by a factor t ~ U(0, 1) per image, with the target
    # w * target + (1 - w) * uniform, w = min(1, t / dim_knee) ("mixup with a black image" below the knee): the
    # classifier's confidence then falls smoothly as a TAME mask darkens the image, instead of jumping between
    # classes at some brightness, and brightness above the knee does not matter (docs/DEMO_FINDINGS.md). 0: off.
    dim_fraction: float = 0.0
    dim_knee: float = 1.0

    def __post_init__(self) -> None:
        shares = (self.blank_fraction, self.occlusion_fraction, self.hidden_fraction, self.dim_fraction)
        if not all(0.0 <= share <= 1.0 for share in shares) or not 0.0 < self.dim_knee <= 1.0:
            raise TameError(f"classifier recipe: fractions must be in [0, 1] and dim_knee in (0, 1]: {self}")


def train_classifier(recipe: ClassifierRecipe, data: DataConfig, num_classes: int, out: Path) -> dict:
    """Train ``recipe.name`` (random init) on ``data.train_list``; save its state dict to ``out``.

    Returns ``{"val_accuracy": ..., "train_loss": ...}`` measured on ``data.val_list``.
    """
    torch.manual_seed(recipe.seed)
    device = torch.device("cpu")
    classifier = create_classifier(recipe.name, pretrained=False, num_classes=num_classes)
    net = classifier.net.requires_grad_(True)
    train_loader = build_loader(
        data,
        data.train_list,
        data.root,
        train=True,
        dist=Dist.local(device),
        seed=recipe.seed,
        global_batch_size=recipe.batch_size,
        num_classes=num_classes,
    )
    val_loader = build_loader(
        data,
        data.val_list,
        data.val_root,
        train=False,
        dist=Dist.local(device),
        global_batch_size=recipe.batch_size,
        num_classes=num_classes,
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.max_lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.max_lr, total_steps=recipe.epochs * len(train_loader)
    )
    masks = ObjectMasks.for_recipe(recipe, data, train_loader)
    loss = torch.zeros(())
    with tqdm(total=recipe.epochs * len(train_loader), desc="classifier", unit="batch") as bar:
        for epoch in range(recipe.epochs):
            train_loader.set_epoch(epoch)
            net.train()
            for k, (images, labels) in enumerate(train_loader):
                shapes = masks.batch(train_loader.plan(), k) if masks else None
                loss = classifier_loss(net, classifier.normalise, images, labels, recipe, shapes)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.set_postfix(loss=f"{loss.item():.3f}")
                bar.update()
    net.eval().requires_grad_(False)
    accuracy = classification_accuracy(classifier, val_loader)
    save_atomic({k: v.detach().clone() for k, v in net.state_dict().items()}, out)
    return {"val_accuracy": accuracy, "train_loss": loss.item()}


def classifier_loss(
    net, normalise, images: torch.Tensor, labels: torch.Tensor, recipe: ClassifierRecipe, shapes=None
) -> torch.Tensor:
    """Cross-entropy with soft targets (label smoothing) over the batch: with ``recipe.dim_fraction`` its first
    images are dimmed (:func:`dim`), with ``blank_fraction`` blank images with a uniform target join it, with
    ``occlusion_fraction`` / ``hidden_fraction`` (``shapes``: the batch's object masks) images are occluded first
    (the hidden ones get a uniform target)."""
    blanks = round(recipe.blank_fraction * images.shape[0])
    uniform_images = images.new_zeros(blanks, *images.shape[1:])
    if shapes is not None:
        images, labels, hidden = occlude(images, labels, shapes, recipe)
        uniform_images = torch.cat([hidden, uniform_images])
    images, light = dim(images, recipe.dim_fraction)
    light = (light / recipe.dim_knee).clamp(max=1.0)
    logits = net(normalise(torch.cat([images, uniform_images])))
    k = logits.shape[1]
    smoothed = F.one_hot(labels, k).float() * (1 - recipe.label_smoothing) + recipe.label_smoothing / k
    targets = light[:, None] * smoothed + (1 - light[:, None]) / k
    targets = torch.cat([targets, targets.new_full((len(uniform_images), k), 1.0 / k)])
    return F.cross_entropy(logits, targets)


def dim(images: torch.Tensor, fraction: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(images with the first ``round(fraction * B)`` multiplied by t ~ U(0, 1) each, t per image [B] (1: kept))."""
    light = images.new_ones(images.shape[0])
    count = round(fraction * images.shape[0])
    if count == 0:
        return images, light
    light[:count] = torch.rand(count)
    return images * light[:, None, None, None], light


def occlude(images: torch.Tensor, labels: torch.Tensor, shapes: torch.Tensor, recipe: ClassifierRecipe):
    """(kept images, their labels, object-hidden images): the first ``occlusion_fraction`` of the batch keep their
    object (its coarse mask) and a random 4 x 4 or 8 x 8 grid of the background (each cell kept with a probability
    drawn uniformly per image); the next ``hidden_fraction`` lose their object (a coarse blob over it)."""
    b, size = images.shape[0], images.shape[-1]
    n_occ, n_hid = round(recipe.occlusion_fraction * b), round(recipe.hidden_fraction * b)
    side = max(1, size // 8)  # TAME's mask resolution at the first tapped layer (layer2: stride 8)
    blob = F.interpolate(F.adaptive_max_pool2d(shapes[:, None].float(), side), size=size, mode="bilinear")
    blob = torch.maximum(blob, shapes[:, None].float())  # the bilinear edge never dims the object itself
    images = images.clone()
    if n_occ:
        grid = 4 if torch.rand(()) < 0.5 else 8
        keep = (torch.rand(n_occ, 1, grid, grid) < torch.rand(n_occ, 1, 1, 1)).float()
        keep = torch.maximum(F.interpolate(keep, size=size, mode="nearest"), blob[:n_occ])
        images[:n_occ] = images[:n_occ] * keep
    hidden = images[n_occ : n_occ + n_hid] * (1 - blob[n_occ : n_occ + n_hid])
    rest = torch.cat([images[:n_occ], images[n_occ + n_hid :]])
    return rest, torch.cat([labels[:n_occ], labels[n_occ + n_hid :]]), hidden


class ObjectMasks:
    """The training list's object masks [N, size, size] (bool), looked up per batch with the loader's flips."""

    def __init__(self, masks: torch.Tensor) -> None:
        self.masks = masks

    @classmethod
    def for_recipe(cls, recipe: ClassifierRecipe, data: DataConfig, loader) -> ObjectMasks | None:
        if recipe.occlusion_fraction == 0 and recipe.hidden_fraction == 0:
            return None
        boxes = Path(data.train_list).parent / "boxes.json"
        if not boxes.is_file():
            raise TameError(f"classifier occlusion training needs the object masks: {boxes} not found")
        meta = json.loads(boxes.read_text())["images"]
        root = Path(data.root)
        masks = [np.asarray(Image.open(root / meta[entry.path]["mask"])) > 127 for entry in loader.entries]
        if data.resize != data.crop or masks[0].shape != (data.crop, data.crop):
            raise TameError("classifier occlusion training needs data.resize == data.crop == the image size")
        return cls(torch.from_numpy(np.stack(masks)))

    def batch(self, plan, k: int) -> torch.Tensor:
        rows = plan.batch(k)
        masks = self.masks[torch.from_numpy(plan.indices[rows])]
        flips = torch.from_numpy(plan.augment[rows, 2] < 0.5)
        return torch.where(flips[:, None, None], masks.flip(-1), masks)


@torch.no_grad()
def classification_accuracy(classifier: torch.nn.Module, loader) -> float:
    """Top-1 accuracy in [0, 1] over an evaluation loader (padding samples, label -1, are ignored)."""
    correct = total = 0
    for images, labels in loader:
        keep = labels >= 0
        predictions = classifier(images).argmax(dim=1)
        correct += int((predictions[keep] == labels[keep]).sum())
        total += int(keep.sum())
    return correct / max(total, 1)
