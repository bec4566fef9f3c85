"""Reproducible speed measurements (run as modules: python -m benchmarks.NAME)."""
