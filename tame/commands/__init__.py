"""The per-command CLI modules: each parses its arguments (``add_arguments``), calls the typed API and prints."""
