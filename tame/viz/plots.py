"""Charts of evaluation numbers (matplotlib, Agg backend): one bar group per metric, one bar per method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from tame.viz.curves import _pyplot, _save


def comparison_chart(
    table: Mapping[str, Mapping[str, float]],
    panels: Sequence[tuple[str, Sequence[str]]],
    path: str | Path,
    title: str = "",
) -> Path:
    """Write a PNG with one panel per ``(panel title, columns)``: grouped bars of ``table[method][column]``.

    ``table``: method -> column -> value; columns no method has are left out, and so are panels left empty.
    """
    plt = _pyplot()
    panels = [(name, [c for c in columns if any(c in row for row in table.values())]) for name, columns in panels]
    panels = [(name, columns) for name, columns in panels if columns]
    methods = list(table)
    fig, axes = plt.subplots(
        1, max(len(panels), 1), figsize=(4.2 * max(len(panels), 1) + 1, 3.6), squeeze=False, layout="constrained"
    )
    width = 0.8 / max(len(methods), 1)
    colours = plt.get_cmap("tab10")
    for axis, (name, columns) in zip(axes[0], panels):
        for i, method in enumerate(methods):
            offset = (i - (len(methods) - 1) / 2) * width
            values = [table[method].get(c, float("nan")) for c in columns]
            axis.bar([x + offset for x in range(len(columns))], values, width, label=method, color=colours(i % 10))
        axis.set_xticks(range(len(columns)), columns, fontsize=8)
        axis.set_title(name, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def cascade_chart(results: Sequence[tuple[str, Mapping]], path: str | Path, measures: Sequence[str]) -> Path:
    """Write a PNG: one panel per similarity measure, one line per method over the cascading randomisation's steps
    (``results``: method -> ``{"cascade": [{"step", measure: value}]}``); "trained" is the start, similarity 1."""
    plt = _pyplot()
    fig, axes = plt.subplots(
        1, len(measures), figsize=(4.2 * len(measures) + 1, 3.4), squeeze=False, layout="constrained"
    )
    for axis, measure in zip(axes[0], measures):
        longest = max((record["cascade"] for _, record in results), key=len)
        position = {step["step"]: i + 1 for i, step in enumerate(longest)}
        for method, record in results:
            steps = record["cascade"]
            x = [0, *[position.get(s["step"], float("nan")) for s in steps]]
            axis.plot(x, [1.0, *[s[measure] for s in steps]], marker="o", label=method)
        axis.set_xticks(range(len(longest) + 1), ["trained", *[s["step"] for s in longest]], rotation=45, fontsize=7)
        axis.set_title(f"{measure} to the trained model's map", fontsize=10)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("cascading randomisation (blocks re-initialised from the top, cumulatively)", fontsize=10)
    return _save(fig, path)
