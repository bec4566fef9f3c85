"""The demo pipeline end to end in its reduced-size mode (the full run is `make demo`)."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import tame.demo
from tame.demo.pipeline import QUICK, run_demo

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def test_quick_demo_runs_end_to_end_and_reuses_stages(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("tame"), "propagate", True)  # setup_logging (a CLI test) may have cut it
    caplog.set_level(logging.INFO, logger="tame")
    report = run_demo(CONFIG, tmp_path, QUICK)
    assert report == tmp_path / "report.html"
    page = report.read_text()
    for method in (
        "tame",
        "gradcam (layer3)",
        "gradcam (layer4)",
        "gradcam++ (layer3)",
        "gradcam++ (layer4)",
        "random",
    ):
        assert f"<td>{method}</td>" in page
    assert "on its better layer" in page and "worst class" in page
    assert (tmp_path / "tune" / "val.txt").is_file()  # the held-out tuning split
    for figure in ("tame/loss_curve.png", "lr_find/lr_find.png", "compare/compare.png", "gallery/00.png"):
        assert (tmp_path / figure).stat().st_size > 1000, figure
        assert figure in page
    assert (tmp_path / "report.md").read_text().startswith("# TAME demo")
    caplog.clear()
    run_demo(CONFIG, tmp_path, QUICK)
    printed = caplog.text
    for stage in ("data", "classifier", "lr-find", "tame", "compare", "check"):
        assert f"[{stage}] reusing" in printed


def test_the_demo_calls_functions_not_command_lines():
    """No module of the demo imports the CLI (or a command module) to run a stage through an argument list."""
    for path in Path(tame.demo.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if name == "tame.cli" or name.startswith("tame.commands")], path
        assert "tame.cli" not in path.read_text(), path
