"""The per-command CLI modules: each exposes ``add_arguments(parser)`` and ``run(args) -> int``."""
