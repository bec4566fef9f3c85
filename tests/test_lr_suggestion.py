"""The LR range test's suggestion on synthetic loss curves whose answer is known."""

from __future__ import annotations

import math

import pytest

from tame.engine.lr_suggestion import format_lr, suggest_max_lr


def _sweep(n: int = 100, start: float = 1e-6, end: float = 10.0) -> list[float]:
    return [start * (end / start) ** (i / (n - 1)) for i in range(n)]


def test_valley_suggests_a_tenth_of_the_minimum_and_finds_the_steepest_descent():
    lrs = _sweep()
    # a loss that is flat, falls fastest around 1e-3, bottoms out at 1e-1, then explodes
    loss = [2.0 - math.tanh(math.log10(lr) + 3) + (max(0.0, math.log10(lr) + 1) ** 2) * 5 for lr in lrs]
    result = suggest_max_lr(lrs, loss)
    assert result.minimum_lr == pytest.approx(0.1, rel=0.25)
    assert result.max_lr == pytest.approx(result.minimum_lr / 10)
    assert result.steepest_lr == pytest.approx(1e-3, rel=0.3)
    assert result.reason == ""


def test_loss_still_falling_at_the_end_suggests_nothing():
    lrs = _sweep()
    loss = [1.0 / (1.0 + lr) for lr in lrs]  # decreasing all the way to the last LR
    result = suggest_max_lr(lrs, loss)
    assert result.max_lr is None
    assert "still falling" in result.reason and "1e1" in result.reason


def test_too_few_steps_suggests_nothing():
    result = suggest_max_lr(_sweep(6), [3, 2, 1, 2, 3, 4])
    assert result.max_lr is None and "6 steps" in result.reason


def test_non_finite_points_are_ignored():
    lrs = _sweep(40)
    loss = [(math.log10(lr) + 2) ** 2 for lr in lrs]  # minimum at 1e-2
    loss[5] = float("nan")
    result = suggest_max_lr(lrs, loss)
    assert result.minimum_lr == pytest.approx(1e-2, rel=0.4)
    assert result.max_lr == pytest.approx(result.minimum_lr / 10)


@pytest.mark.parametrize(
    ("lr", "text"),
    [(0.0100000001, "1e-2"), (0.0032, "3.2e-3"), (0.9999999999999993, "1e0"), (10.0, "1e1"), (None, "none")],
)
def test_format_lr(lr, text):
    assert format_lr(lr) == text
