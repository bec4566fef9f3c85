"""Stop a training run cleanly when the cluster asks: SIGTERM or SIGUSR1 -> a checkpoint, then exit 143.

SLURM sends SIGTERM before it kills a preempted job (and, with ``--signal=B:USR1@120``, a chosen signal before
the time limit); torchrun passes SIGTERM on to its workers. Killed outright, a run would lose up to
``train.checkpoint_every`` steps. Instead every rank's handler only sets a flag; at each step boundary the ranks
agree on it (one small all-reduce, :func:`tame.distributed.any_rank_async`), so all of them stop after the same
step: a checkpoint of that step is written (``step_S.pt``, or the epoch's ``epoch_N.pt`` when the step ends an
epoch), and the run ends with :class:`Preempted`, which ``tame train`` turns into exit status
:data:`PREEMPTED_EXIT` (143, as a shell reports a process ended by SIGTERM; the SLURM scripts requeue the job on it).
Running the same command again resumes from that checkpoint without losing a step.

Under torchrun the workers exit 0 instead (:func:`exit_status`): torchrun restarts workers that exit non-zero
(``--max-restarts``), which would resume training inside a job that is about to end, and it reports every failure
as 1 anyway. The launcher learns of the stop from the file it names in ``TAME_PREEMPTED_FILE``, which rank 0
writes (the stop's message): ``launch/torchrun.sh`` then exits 143, the SLURM scripts requeue the job.

With several processes the flags are agreed one step late (the all-reduce started at step S is read at step
S + 1, so it never makes a step wait): the run stops one step after the signal. A signal at the run's last step
changes nothing: the run is complete and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Mapping
from pathlib import Path

import torch

from tame.distributed import Dist, any_rank_async, started_by_torchrun
from tame.io import write_text_atomic

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
PREEMPTED_EXIT = 143  # 128 + SIGTERM
PREEMPTED_FILE_VARIABLE = "TAME_PREEMPTED_FILE"  # set by the launcher: where rank 0 reports a stop


class Preempted(Exception):
    """The run stopped on a signal after writing a checkpoint; ``exit_code`` for the command line (see
    :func:`exit_status`)."""

    def __init__(self, received: int | None, step: int, checkpoint: Path | None, is_main: bool = True) -> None:
        who = signal.Signals(received).name if received else "a stop signal to another process"
        self.is_main = is_main  # rank 0: the one that tells the launcher
        self.exit_code = 0 if started_by_torchrun() else PREEMPTED_EXIT
        why = " under torchrun, which restarts workers that fail" if self.exit_code == 0 else ""
        super().__init__(
            f"stopped by {who} after step {step}; checkpoint {checkpoint} written: run the same command again to "
            f"continue (exit {self.exit_code}{why})"
        )


class StopSignals:
    """``with StopSignals(dist) as stop:`` -- SIGTERM / SIGUSR1 set a flag; :meth:`agreed` reads it at a step."""

    def __init__(self, dist: Dist) -> None:
        self.dist = dist
        self.received: int | None = None  # the first stop signal this process got
        self.stopping = False  # agreed by every rank: stop after the current step
        self._flag = torch.zeros(1, dtype=torch.int32, device=dist.device)
        self._pending = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # Python installs handlers only there
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, kind, value, traceback) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self._pending is not None and (kind is None or issubclass(kind, Preempted)):
            self._pending()  # every rank started it: finish it before the process group goes away

    def _handle(self, signum: int, frame) -> None:
        if self.received is None:
            self.received = signum

    def agreed(self) -> bool:
        """Whether every rank stops after this step (call it once per step on every rank)."""
        if not self.dist.distributed:
            self.stopping = self.received is not None
            return self.stopping
        previous = self._pending
        self._flag.fill_(int(self.received is not None))
        self._pending = any_rank_async(self.dist, self._flag)
        self.stopping = previous is not None and previous()
        return self.stopping

    def stop(self, step: int, total_steps: int, checkpoint: Path | None) -> None:
        """Raise :class:`Preempted` if the ranks agreed to stop and the run is not complete."""
        if self.stopping and step < total_steps:
            raise Preempted(self.received, step, checkpoint, self.dist.is_main)


def exit_status(stopped: Preempted, env: Mapping[str, str] | None = None) -> int:
    """The exit status of a stopped run (:data:`PREEMPTED_EXIT`; 0 for a torchrun worker, which torchrun would
    otherwise restart in place), after telling the launcher: rank 0 writes ``$TAME_PREEMPTED_FILE`` when it is set."""
    marker = (os.environ if env is None else env).get(PREEMPTED_FILE_VARIABLE)
    if marker and stopped.is_main:
        try:
            write_text_atomic(marker, f"{stopped}\n")
        except OSError as err:  # the checkpoint is written; the launcher then sees a failure instead of a stop
            logger.warning("cannot write %s=%s: %s", PREEMPTED_FILE_VARIABLE, marker, err)
    return stopped.exit_code
