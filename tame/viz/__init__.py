"""Rendering: overlays, comparison figures, curves, plots and reports."""
