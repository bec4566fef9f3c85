"""The options every benchmark shares (--device, --threads, --quick, --out) are spelled once, in
benchmarks/harness.py, and every benchmark takes them from there (issue 33.8)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from benchmarks.harness import add_common_options

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# demo_localisation / demo_runs write a folder of reports (--out DIR) and run the demo (--threads N...): not these
SHARED = ["evaluation", "export", "latency", "loaders", "memory", "throughput", "timm_step", "training"]


@pytest.mark.parametrize("name", SHARED)
def test_each_benchmark_takes_the_common_options_from_the_harness(name):
    source = (BENCHMARKS / f"{name}.py").read_text()
    assert re.search(rf'add_common_options\(\s*parser,\s*"{name}"', source)
    assert not re.search(r'add_argument\(\s*"--(device|threads|quick|out)"', source)


def test_common_options_parse_and_name_their_report():
    parser = argparse.ArgumentParser()
    add_common_options(parser, "latency", "64 px")
    args = parser.parse_args(["--quick", "--out", "x.json", "--device", "cuda", "--threads", "3"])
    assert (args.quick, args.out, args.device, args.threads) == (True, "x.json", "cuda", 3)
    assert vars(parser.parse_args([])) == {"device": "cpu", "threads": 2, "quick": False, "out": None}
    assert "benchmarks/results/latency.json" in parser.format_help()
    loaders = argparse.ArgumentParser()
    add_common_options(loaders, "loaders", "a check", device=None, threads=None)
    assert vars(loaders.parse_args([])) == {"quick": False, "out": None}
