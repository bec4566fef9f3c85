"""The ``tame`` subcommands: each module exposes ``add_arguments(parser)`` and ``run(args) -> int``, parses its
arguments, calls the typed API and prints; ``options`` holds the options several of them share."""
