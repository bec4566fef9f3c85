"""Example builders for ``model.name: examples.MODULE:FUNCTION`` (put the repository root on PYTHONPATH)."""
