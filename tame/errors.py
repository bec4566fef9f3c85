"""The one exception type users see: a single clear line, no traceback (the CLI turns it into exit 2)."""


class TameError(Exception):
    """A user-facing failure: what went wrong, where, and what to do about it."""
