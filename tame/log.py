"""Logging for the package and the command line, set up once per process.

Modules log through ``logging.getLogger(__name__)``; :func:`setup_logging` (called by the CLI, or by a notebook that
wants the messages) prints rank 0's INFO and above as plain lines, every rank's warnings and errors tagged with the
rank, and nothing from other ranks below WARNING. Status lines (INFO, DEBUG) go to stdout, warnings and errors to
stderr: a run that went well leaves stderr empty. Progress bars stay tqdm's (rank 0 only, on stderr).
Without :func:`setup_logging` (a library user), Python's last-resort handler still shows warnings on stderr.
"""

from __future__ import annotations

import logging
import sys

_HANDLER_NAME = "tame"


class RankFilter(logging.Filter):
    """Lets rank 0's records through; other ranks' only from WARNING up, prefixed with the rank."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        if self.rank == 0:
            return True
        if record.levelno < logging.WARNING:
            return False
        record.msg = f"[rank {self.rank}] {record.msg}"
        return True


class ConsoleHandler(logging.Handler):
    """Writes each record to the ``sys.stdout`` (below WARNING) or ``sys.stderr`` of the moment it is emitted, so
    redirections made after set-up (a test's capture, a forked worker's log file) receive it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stderr if record.levelno >= logging.WARNING else sys.stdout
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


class _Formatter(logging.Formatter):
    """``message`` for INFO, ``tame: warning: message`` for warnings and errors, ``debug: ...`` for DEBUG."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"tame: {record.levelname.lower()}: {message}"
        if record.levelno < logging.INFO:
            return f"debug: {record.name}: {message}"
        return message


def setup_logging(verbosity: int = 0, rank: int = 0) -> None:
    """``verbosity``: -1 quiet (warnings and errors only), 0 normal, 1 verbose (debug); ``rank``: this process's
    (the CLI passes ``tame.distributed.launch_rank()``). Safe to call again."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG if verbosity > 0 else logging.WARNING)
    logger = logging.getLogger("tame")
    for handler in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(handler)
    handler = ConsoleHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_Formatter("%(message)s"))
    handler.addFilter(RankFilter(rank))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
