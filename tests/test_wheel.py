"""The built wheel works outside the checkout: shipped configs and lists found by name (issue #40, point 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_runs_outside_the_checkout(tmp_path: Path) -> None:
    wheels, site, work = tmp_path / "wheels", tmp_path / "site", tmp_path / "elsewhere"
    work.mkdir()
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), "."]
    assert _run(build, ROOT, dict(os.environ)).returncode == 0
    wheel = next(wheels.glob("tame-*.whl"))
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(site)]
    assert _run([*install, str(wheel)], work, dict(os.environ)).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env.pop("TAME_DATA", None)
    tame = [sys.executable, "-m", "tame.cli"]
    where = _run([sys.executable, "-c", "import tame; print(tame.__file__)"], work, env)
    assert Path(where.stdout.strip()).is_relative_to(site)  # the wheel's tame, not the checkout's
    assert _run([*tame, "--help"], work, env).returncode == 0
    listed = _run([*tame, "configs"], work, env)
    assert listed.returncode == 0 and "resnet50 " in listed.stdout and "demo " in listed.stdout
    (work / "data" / "ILSVRC2012_img_train").mkdir(parents=True)
    (work / "data" / "ILSVRC2012_img_val").mkdir()
    (work / "train.txt").write_text("a.JPEG 0\n")
    env["TAME_DATA"] = str(work / "data")
    overrides = ["model.pretrained=false", "data.validate=none", "data.train_list=train.txt"]
    overrides += ["data.backend=torch", "data.batch_size=1"]
    check = _run([*tame, "train", "--config", "resnet50", "--check", *overrides], work, env)
    assert check.returncode == 0, check.stderr
    shipped = site / "tame" / "_data" / "datalist" / "ILSVRC"
    assert f"val        {shipped / 'Validation_2000.txt'}: 2,000 images" in check.stdout
    assert f"eval       {shipped / 'Evaluation_2000.txt'}: 2,000 images" in check.stdout
    demo = _run([*tame, "demo", "--quick", "--out", "q", "--threads", "1"], work, env, timeout=500)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert (work / "q" / "report.html").is_file()
