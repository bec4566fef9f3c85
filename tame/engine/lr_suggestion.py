"""Which max LR an LR range test suggests, read off the smoothed loss curve as fastai's ``lr_find`` does.

The curve is the smoothed loss against the LR on a log axis. Two readings, both reported:

- ``minimum / 10``: a tenth of the LR where the smoothed loss is lowest (the usual advice for a one-cycle max LR:
  the minimum itself is already on the edge of divergence). This is the suggestion.
- ``steepest``: the LR where the loss falls fastest per decade of LR, between the start and the minimum.

No suggestion is better than a wrong one: when the loss is still falling at the end of the sweep (the minimum is
among the last points), or the sweep is too short to have a shape, the result says why and suggests nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_POINTS = 8  # fewer points than this have no shape to read
SKIP_START = 0.1  # the first 10 % of a sweep is warm-up noise (the smoothing's bias correction settles)


@dataclass(frozen=True)
class LrSuggestion:
    max_lr: float | None  # the suggestion (minimum / 10), or None with ``reason``
    minimum_lr: float | None = None  # LR at the lowest smoothed loss
    steepest_lr: float | None = None  # LR of the steepest descent before the minimum
    reason: str = ""  # why there is no suggestion (empty when there is one)


def format_lr(lr: float | None) -> str:
    """``0.0100000001`` -> ``1e-2``, ``0.0032`` -> ``3.2e-3``, None -> ``none``."""
    if lr is None:
        return "none"
    mantissa, exponent = f"{lr:.1e}".split("e")
    mantissa = mantissa.removesuffix(".0")
    return f"{mantissa}e{int(exponent)}"


def suggest_max_lr(lrs: Sequence[float], smoothed_loss: Sequence[float]) -> LrSuggestion:
    """Read the suggestion off a sweep (``lrs`` rising, one smoothed loss per LR)."""
    points = [(lr, loss) for lr, loss in zip(lrs, smoothed_loss) if lr > 0 and math.isfinite(loss)]
    if len(points) < MIN_POINTS:
        return LrSuggestion(None, reason=f"only {len(points)} steps swept (at least {MIN_POINTS} needed)")
    losses = [loss for _, loss in points]
    lowest = min(range(len(points)), key=losses.__getitem__)
    minimum_lr = points[lowest][0]
    if lowest >= len(points) - max(2, len(points) // 20):
        return LrSuggestion(
            None,
            minimum_lr=minimum_lr,
            reason=f"the loss is still falling at the last LR swept ({format_lr(points[-1][0])}): sweep further "
            "(a larger --end-lr or more --steps)",
        )
    start = int(len(points) * SKIP_START)
    slopes = [
        (losses[i + 1] - losses[i]) / (math.log10(points[i + 1][0]) - math.log10(points[i][0]))
        for i in range(start, max(lowest, start + 1))
        if points[i + 1][0] > points[i][0]
    ]
    steepest_lr = None
    if slopes:
        i = min(range(len(slopes)), key=slopes.__getitem__)
        steepest_lr = points[start + i][0] if slopes[i] < 0 else None
    return LrSuggestion(minimum_lr / 10, minimum_lr=minimum_lr, steepest_lr=steepest_lr)
