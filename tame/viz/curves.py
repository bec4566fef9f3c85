"""Training curves as PNG files (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tame.io import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    """Write atomically (a reader never sees half a PNG), then close the figure."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        _pyplot().close(fig)
    return path


def plot_loss_curves(
    steps: Sequence[int], series: Mapping[str, Sequence[float]], path: str | Path, title: str = ""
) -> Path:
    """One panel per series (loss, ce, area, var, lr, ...) against the training step; writes ``path``."""
    plt = _pyplot()
    names = list(series)
    fig, axes = plt.subplots(len(names), 1, figsize=(7, 1.8 * len(names) + 0.6), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        ax.plot(steps, series[name], linewidth=1.0)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_lr_range(
    lrs: Sequence[float],
    losses: Sequence[float],
    suggested_lr: float | None,
    path: str | Path,
    title: str = "LR range test",
    *,
    minimum_lr: float | None = None,
    note: str = "",
    format_lr: Callable[[float], str] = "{:.1e}".format,
) -> Path:
    """Smoothed loss against the LR (log axis), the suggested max LR and the minimum marked (their legend writes
    LRs with ``format_lr``: the engine passes its own), ``note`` (why there is no suggestion) written on the plot;
    writes ``path``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(lrs, losses, linewidth=1.2)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (weights; biases get 2x)")
    ax.set_ylabel("smoothed loss")
    ax.grid(alpha=0.3, which="both")
    if minimum_lr is not None:
        ax.axvline(minimum_lr, color="tab:gray", linestyle=":", label=f"minimum of the loss {format_lr(minimum_lr)}")
    if suggested_lr is not None:
        ax.axvline(suggested_lr, color="tab:red", linestyle="--", label=f"suggested max LR {format_lr(suggested_lr)}")
    if note:
        ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=8, wrap=True, va="bottom")
    if minimum_lr is not None or suggested_lr is not None:
        ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)
