"""The demo pipeline end to end in its reduced-size mode (the full run is `make demo`)."""

from __future__ import annotations

from pathlib import Path

from tame.demo.pipeline import QUICK, run_demo

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def test_quick_demo_runs_end_to_end_and_reuses_stages(tmp_path, capsys):
    report = run_demo(CONFIG, tmp_path, QUICK)
    assert report == tmp_path / "report.html"
    page = report.read_text()
    for method in ("tame", "gradcam", "gradcam++", "random"):
        assert f"<td>{method}</td>" in page
    for figure in ("tame/loss_curve.png", "lr_find/lr_find.png", "compare/compare.png", "gallery/00.png"):
        assert (tmp_path / figure).stat().st_size > 1000, figure
        assert figure in page
    assert (tmp_path / "report.md").read_text().startswith("# TAME demo")
    capsys.readouterr()
    run_demo(CONFIG, tmp_path, QUICK)
    printed = capsys.readouterr().out
    for stage in ("data", "classifier", "lr-find", "tame", "compare"):
        assert f"[{stage}] reusing" in printed
