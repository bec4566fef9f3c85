"""The run folder (``output_dir``): only a folder of ours, and one writer at a time.

A training run writes ``config.yaml``, ``train_record.json``, checkpoints and logs into ``output_dir``, so it must
never be a folder that holds someone else's files. :func:`check_output_dir` refuses, before anything is written:

- an empty ``output_dir``, ``.`` (or any spelling of the current folder), the home folder and a file-system root;
- a folder that exists, is not empty and holds no run of ours. A run of ours is marked by :data:`MARKER`
  (``.tame-run``, written when a run first takes the folder); a folder written by an older ``tame`` without the
  marker is recognised by its checkpoint files (``epoch_N.pt``, ``step_N.pt``) and adopted.

:class:`RunLock` then makes rank 0 the folder's only writer for the run's life: an exclusive ``fcntl.flock`` on
:data:`LOCK_FILE`, which the kernel releases when the process ends however it ends (kill -9 included). A second
run on the same folder fails at once with one line naming the holder (pid, host, start time, written into the lock
file). A lock file left by a dead run (present, not locked) is taken over with a warning. The lock file is written
in place on its open descriptor, not through ``tame.io``'s atomic rename: the lock belongs to the file's inode,
and replacing the file would hand a second run a fresh, unlocked one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import re
import socket
import time
from pathlib import Path

from tame import distributed
from tame.checkpoint.naming import parse_name
from tame.distributed import Dist
from tame.errors import TameError
from tame.io import check_writable_folder, write_text_atomic

logger = logging.getLogger(__name__)
MARKER = ".tame-run"
LOCK_FILE = ".tame-run.lock"
OURS = (MARKER, LOCK_FILE)


def check_output_dir(value: str, folder: Path) -> None:
    """Refuse an ``output_dir`` (``value`` as configured, ``folder`` expanded) a run must not write into."""
    if not value.strip():
        raise TameError("config key output_dir: empty; name a folder for the run (e.g. output_dir=snapshots/run1)")
    resolved = folder.resolve()
    reserved = {Path.cwd().resolve(): "the current folder", Path.home().resolve(): "the home folder"}
    if resolved == Path(resolved.anchor) or resolved in reserved:
        what = reserved.get(resolved, "a file-system root")
        raise TameError(
            f"config key output_dir: {value!r} is {what} ({resolved}); a run writes config.yaml, "
            "train_record.json and checkpoints there: name a folder of its own (e.g. output_dir=snapshots/run1)"
        )
    if folder.exists() and not folder.is_dir():
        raise TameError(f"config key output_dir: {folder} is a file, not a folder")
    if not folder.exists():
        check_writable_folder(folder, "config key output_dir")
    if folder.is_dir() and not is_run_folder(folder):
        raise TameError(
            f"config key output_dir: {folder} is not empty and holds no tame run (no {MARKER} file, no "
            "checkpoints); a run would write over its files: choose a new or empty folder"
        )


def is_run_folder(folder: Path) -> bool:
    """Empty, marked as ours, or holding checkpoints of an older ``tame`` (without the marker)."""
    names = [path.name for path in folder.iterdir()]
    return all(name in OURS for name in names) or MARKER in names or any(parse_name(n) for n in names)


def mark_run_folder(folder: Path) -> None:
    """Write :data:`MARKER` (once): the folder now holds a run of ours."""
    if not (folder / MARKER).exists():
        write_text_atomic(folder / MARKER, json.dumps({"format": "tame-run/1", "created": _now()}) + "\n")


class RunLock:
    """An exclusive lock on ``folder`` for one run (rank 0), released by :meth:`release` or the process's end."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise a one-line TameError naming the run that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            previous = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise TameError(
                        f"output_dir {self.path.parent} is in use by another run ({previous or 'holder unknown'}; "
                        f"lock {self.path}): wait for it to end or stop it, or choose another output_dir"
                    ) from None
                logger.warning(
                    "cannot lock %s (%s): the file system does not support locks, so nothing stops a second run "
                    "from writing into this folder at the same time",
                    self.path,
                    err.strerror or err,
                )
                return
            if _same_file(fd, self.path):  # not unlinked by a holder that released it meanwhile
                break
            os.close(fd)
        if previous:
            _report_takeover(self.path, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {_now()}\n".encode(), 0)
        self.fd = fd

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        """Remove the lock file and release the lock (unlinked first, so a waiting run retries on a fresh file)."""
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def _report_takeover(path: Path, previous: str) -> None:
    """A lock file nobody holds: its run ended without removing it (killed). Provably so when it names a process of
    this machine that is gone (a line on stdout); a warning when it names another machine, whose run this one can
    only believe ended because the shared file system says the lock is free."""
    holder = re.match(r"pid (\d+) on (\S+),", previous)
    if holder and holder.group(2) == socket.gethostname() and not _alive(int(holder.group(1))):
        logger.info("taking over the lock %s of an ended run (%s)", path.name, previous)
    else:
        logger.warning("taking over the lock %s left by a run that is no longer alive (%s)", path, previous)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def take_run_folder(value: str, folder: Path, dist: Dist) -> RunLock:
    """Rank 0 checks ``output_dir``, locks and marks it; a refusal is raised on every rank (nothing written)."""
    lock, refusal = RunLock(folder), None
    if dist.is_main:
        try:
            check_output_dir(value, folder)
            lock.acquire()
            mark_run_folder(folder)
        except (TameError, OSError) as err:
            lock.release()
            refusal = err if isinstance(err, TameError) else TameError(f"output_dir {folder}: {err}")
    refusal = distributed.broadcast_object(dist, refusal)
    if refusal is not None:
        raise refusal
    return lock
