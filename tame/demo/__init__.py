"""The self-contained demo: synthetic data, a classifier trained from scratch, TAME, baselines, a report."""
