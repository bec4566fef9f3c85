"""The ``tame`` subcommands: each module parses its arguments (``add_arguments``, ``run``) and calls the typed API."""
