"""The demo report: one self-contained folder with report.html and report.md side by side.

Figures are referenced by relative path (PNG files next to the report), so the folder can be copied or zipped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tame.io import write_text_atomic


@dataclass
class Report:
    title: str
    summary: list[str] = field(default_factory=list)  # one sentence each
    table_header: list[str] = field(default_factory=list)
    table_rows: list[list[str]] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative png path)
    gallery: list[tuple[str, str]] = field(default_factory=list)  # (caption, relative png path)
    facts: Mapping[str, str] = field(default_factory=dict)  # "what: value" lines (settings, timings)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)  # (title, header, rows) more


def write_report(report: Report, folder: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.md`` into ``folder``; returns both paths."""
    folder = Path(folder)
    html_path, md_path = folder / "report.html", folder / "report.md"
    write_text_atomic(html_path, _html(report))
    write_text_atomic(md_path, _markdown(report))
    return html_path, md_path


def _table_md(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _markdown(report: Report) -> str:
    parts = [f"# {report.title}", "", *report.summary, ""]
    if report.table_rows:
        parts += ["## Results", "", _table_md(report.table_header, report.table_rows), ""]
    for title, header, rows in report.tables:
        parts += [f"### {title}", "", _table_md(header, rows), ""]
    for caption, path in report.figures:
        parts += [f"### {caption}", "", f"![{caption}]({path})", ""]
    if report.gallery:
        parts += ["## Explanation maps (ground-truth box in white)", ""]
        parts += [f"![{caption}]({path})" for caption, path in report.gallery] + [""]
    if report.facts:
        parts += ["## Run", "", *[f"- {key}: {value}" for key, value in report.facts.items()], ""]
    return "\n".join(parts)


def _html(report: Report) -> str:
    esc = html.escape
    table = ""
    if report.table_rows:
        head = "".join(f"<th>{esc(h)}</th>" for h in report.table_header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in report.table_rows)
        table = f"<h2>Results</h2><table><tr>{head}</tr>{body}</table>"
    for title, header, rows in report.tables:
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
        table += f"<h3>{esc(title)}</h3><table><tr>{head}</tr>{body}</table>"
    figures = "".join(
        f'<figure><img src="{esc(path)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'
        for caption, path in report.figures
    )
    gallery = "".join(
        f'<figure class="wide"><img src="{esc(path)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption>'
        "</figure>"
        for caption, path in report.gallery
    )
    facts = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in report.facts.items())
    summary = "".join(f"<p>{esc(line)}</p>" for line in report.summary)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(report.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: .3em .6em; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
figure {{ display: inline-block; margin: .5em; width: 48%; vertical-align: top; }}
figure.wide {{ width: 100%; }} img {{ max-width: 100%; }} figcaption {{ font-size: .85em; color: #555; }}
</style></head><body>
<h1>{esc(report.title)}</h1>
{summary}
{table}
<h2>Curves</h2>{figures}
<h2>Explanation maps (ground-truth box in white)</h2>{gallery}
<h2>Run</h2><ul>{facts}</ul>
</body></html>
"""
