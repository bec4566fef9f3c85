"""Runs ``tame`` commands that SIGKILL themselves at a chosen point: the fault-injection half of the reliability tests.

Two ways to use it (the fault is JSON: ``{"kind": ..., "at": N, "rank": R, "once": MARKER}``):

``python fault_runner.py serve``
    Imports torch and tame once, then for every JSON line ``{"argv": [...], "fault": {...} | null, "log": PATH,
    "stderr": PATH (optional)}`` on stdin forks a child that installs the fault and runs ``tame.cli.main(argv)``, its
    stdout in ``log`` and its stderr in ``stderr`` (default: ``log`` too); answers ``{"status": S}`` (the exit code,
    or minus the signal that ended the child). Forking from a process that has imported but never computed anything
    saves the seconds of start-up of every run; :class:`Runner` is the client.
``python fault_runner.py run FAULT -- ARGV...``
    The same in this process (the entry script under ``torchrun``).

Kinds (``at`` counts from 1, in this process):
- ``step``: die at the start of training step ``at`` (``TameModel.training_step``);
- ``mid-write``: the ``at``-th checkpoint write dies with half of the file's bytes in its temporary file;
- ``before-replace``: the ``at``-th checkpoint write dies with the temporary file complete, before ``os.replace``;
- ``after-replace``: dies right after the ``at``-th checkpoint replaced its file (before old ones are pruned);
- ``signal``: sends itself ``signal`` (a name: ``SIGTERM``, ``SIGUSR1``) at the start of step ``at`` and goes on;
- ``pause``: at the start of step ``at`` creates the file ``ready`` and waits (at most 120 s) until ``go`` exists;
- ``record`` (no fault): appends to ``to``/rank``RANK``.jsonl one JSON line per loader pass (``list``, ``epoch``,
  ``indices``: the list entries this rank reads, padding left out) and per checkpoint written (``saved``: its name).
``rank``: only the process of that ``RANK`` dies; ``once``: only if the marker file does not exist (it is created).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

CHECKPOINT_TEMPORARY = re.compile(r"\.(epoch|step)_\d+\.pt\.tmp")
CHECKPOINT = re.compile(r"(epoch|step)_\d+\.pt$")


class Runner:
    """A ``serve`` process: ``run(argv, fault)`` forks one ``tame`` run and returns (status, stdout, stderr)."""

    def __init__(self, logs: Path) -> None:
        self.logs, self.count = logs, 0
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"}
        command = [sys.executable, __file__, "serve"]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def run(self, argv: list, fault: dict | None = None) -> tuple[int, str, str]:
        self.count += 1
        out, err = self.logs / f"run{self.count}.out", self.logs / f"run{self.count}.err"
        job = {"argv": [str(a) for a in argv], "fault": fault, "log": str(out), "stderr": str(err)}
        self.process.stdin.write(json.dumps(job) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, f"the fault runner died; stderr of the last run:\n{err.read_text() if err.exists() else ''}"
        return json.loads(answer)["status"], out.read_text(), err.read_text()

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def send_signal(name: str) -> None:
    os.kill(os.getpid(), getattr(signal, name))


def pause(ready: str, go: str) -> None:
    open(ready, "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.05)


def install_fault(kind: str, at: int, rank: int | None = None, once: str | None = None, **options) -> None:
    if rank is not None and int(os.environ.get("RANK", "0")) != rank:
        return
    if once is not None:
        if os.path.exists(once):
            return
        open(once, "w").close()
    calls = [0]

    def due() -> bool:
        calls[0] += 1
        return calls[0] == at

    if kind in ("step", "signal", "pause"):
        from tame.models import TameModel

        training_step = TameModel.training_step
        act = {"step": die, "signal": lambda: send_signal(options["signal"]), "pause": lambda: pause(**options)}[kind]

        def step(self, *args, **kwargs):
            if due():
                act()
            return training_step(self, *args, **kwargs)

        TameModel.training_step = step
    elif kind == "mid-write":
        import torch

        save = torch.save

        def half_save(obj, target, *args, **kwargs):
            if CHECKPOINT_TEMPORARY.search(str(getattr(target, "name", target))) and due():
                buffer = io.BytesIO()
                save(obj, buffer, *args, **kwargs)
                data = buffer.getvalue()
                target.write(data[: len(data) // 2])
                target.flush()
                os.fsync(target.fileno())
                die()
            return save(obj, target, *args, **kwargs)

        torch.save = half_save
    elif kind in ("before-replace", "after-replace"):
        replace = os.replace

        def dying_replace(src, dst, *args, **kwargs):
            checkpoint = CHECKPOINT.search(str(dst)) is not None
            if checkpoint and kind == "before-replace" and due():
                die()
            replace(src, dst, *args, **kwargs)
            if checkpoint and kind == "after-replace" and due():
                die()

        os.replace = dying_replace
    elif kind == "record":
        install_recorder(Path(options["to"]))
    elif kind != "none":
        raise ValueError(f"unknown fault kind {kind!r}")


def install_recorder(folder: Path) -> None:
    """What this rank reads and writes, for the tests that check sharding and the one checkpoint writer."""
    import tame.checkpoint.format
    from tame.data.sharding import Loader

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"rank{os.environ.get('RANK', '0')}.jsonl"

    def record(entry: dict) -> None:
        with open(path, "a") as handle:
            handle.write(json.dumps(entry) + "\n")

    iterate, save = Loader.__iter__, tame.checkpoint.format.save_atomic

    def recording_iter(self):
        plan = self.plan()
        read = plan.indices[self._skip * plan.batch_size :][~plan.padding[self._skip * plan.batch_size :]]
        record({"list": self.list_file.name, "epoch": self.epoch, "indices": read.tolist()})
        return iterate(self)

    def recording_save(obj, target):
        record({"saved": Path(target).name})
        return save(obj, target)

    Loader.__iter__ = recording_iter
    tame.checkpoint.format.save_atomic = recording_save


def run(fault: dict | None, argv: list[str]) -> int:
    import torch

    torch.set_num_threads(1)
    if fault:
        install_fault(**fault)
    from tame.cli import main

    return main(argv)


def serve() -> None:
    # imported once, before any fork (what a tiny run otherwise spends most of its time on); nothing is computed
    import matplotlib.pyplot  # noqa: F401  (the loss curve)
    import timm  # noqa: F401
    import torch._dynamo  # noqa: F401  (torch.use_deterministic_algorithms imports it)

    import tame.cli  # noqa: F401
    import tame.engine.train  # noqa: F401
    import tame.models  # noqa: F401

    for line in sys.stdin:
        job = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            for fd, path in ((1, job["log"]), (2, job.get("stderr", job["log"]))):
                os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), fd)
            code = 1
            try:
                code = run(job.get("fault"), job["argv"])
            except SystemExit as exit_request:  # argparse
                code = exit_request.code if isinstance(exit_request.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"status": code}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve()
    elif sys.argv[1:2] == ["run"] and sys.argv[3:4] == ["--"]:
        sys.exit(run(json.loads(sys.argv[2]), sys.argv[4:]))
    else:
        sys.exit(f"usage: {sys.argv[0]} serve | run FAULT_JSON -- ARGV...")
