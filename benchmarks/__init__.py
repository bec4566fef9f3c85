"""Reproducible speed measurements (run as modules: python -m benchmarks.NAME; see benchmarks/README.md).

Set before any benchmark imports torch: idle OpenMP threads sleep instead of spinning, so that on a CPU shared with
other work a descheduled thread does not stall its partner, and process CPU time counts work only. It applies to
every alternative alike; set OMP_WAIT_POLICY yourself to override.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
