"""The demo's stand-in for a pretrained ImageNet model: a small timm CNN trained from scratch on the synthetic set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from tame.config import DataConfig
from tame.data.loaders import build_loader
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
        device=device,
        seed=recipe.seed,
        batch_size=recipe.batch_size,
        num_classes=num_classes,
    )
    val_loader = build_loader(
        data,
        data.val_list,
        data.val_root,
        train=False,
        device=device,
        batch_size=recipe.batch_size,
        num_classes=num_classes,
    )
    optimizer = torch.optim.AdamW(net.parameters(), lr=recipe.max_lr, weight_decay=recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.max_lr, total_steps=recipe.epochs * len(train_loader)
    )
    loss = torch.zeros(())
    with tqdm(total=recipe.epochs * len(train_loader), desc="classifier", unit="batch") as bar:
        for epoch in range(recipe.epochs):
            train_loader.set_epoch(epoch)
            net.train()
            for images, labels in train_loader:
                loss = classifier_loss(net, classifier.normalise, images, labels, recipe)
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


def classifier_loss(net, normalise, images: torch.Tensor, labels: torch.Tensor, recipe: ClassifierRecipe):
    """Cross-entropy on the batch; with ``recipe.blank_fraction``, blank images with a uniform target join it."""
    blanks = round(recipe.blank_fraction * images.shape[0])
    if blanks == 0:
        return F.cross_entropy(net(normalise(images)), labels, label_smoothing=recipe.label_smoothing)
    logits = net(normalise(torch.cat([images, images.new_zeros(blanks, *images.shape[1:])])))
    real = F.cross_entropy(logits[: images.shape[0]], labels, label_smoothing=recipe.label_smoothing)
    uniform = torch.full_like(logits[images.shape[0] :], 1.0 / logits.shape[1])
    blank = F.cross_entropy(logits[images.shape[0] :], uniform)
    return (images.shape[0] * real + blanks * blank) / (images.shape[0] + blanks)


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
