"""How big the demo is: the full demo's sizes (``DemoSize()``) and the seconds-long smoke test's (``QUICK``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoSize:
    classes: int = 6
    train_per_class: int = 200
    val_per_class: int = 40
    tune_per_class: int = 40  # the held-out tuning split (synthetic seed 1), as large as the report split
    image_size: int = 64
    classifier: str = "resnet10t"
    classifier_epochs: int = 20
    tame_epochs: int = 8
    lr_find_steps: int = 40
    gallery: int = 6
    batch_size: int = 32


QUICK = DemoSize(
    classes=3,
    train_per_class=8,
    val_per_class=4,
    tune_per_class=2,
    image_size=64,
    classifier="test_resnet",
    classifier_epochs=1,
    tame_epochs=1,
    lr_find_steps=4,
    gallery=2,
    batch_size=8,
)
