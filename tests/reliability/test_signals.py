"""Signals the second probe's preemption handling missed (third probe, issue 25 item 18 and the SIGHUP part of 22):
SIGTERM then SIGINT 0.3 s later printed a KeyboardInterrupt traceback from the clean-up; SIGHUP (a dropped ssh
session) killed the run without the step checkpoint that SIGTERM writes."""

from __future__ import annotations

import os
import signal

import pytest
import torch
from train_helpers import tiny_overrides

from tame.distributed import Dist
from tame.engine.preemption import StopSignals

SPARSE = "train.checkpoint_every=0"


def _warning(name: str, saved) -> str:
    return (
        f"tame: warning: stopped by {name} after step 3; checkpoint {saved} written: run the same command again to "
        "continue (exit 143)\n"
    )


@pytest.mark.parametrize("after", [0.0, 0.05, 0.3])
def test_sigint_after_sigterm_is_deferred_not_a_traceback(runner, data, tmp_path, after):
    argv = ["train", *tiny_overrides(data, tmp_path, SPARSE)]
    fault = {"kind": "signal", "at": 3, "signal": "SIGTERM", "then": "SIGINT", "after": after}
    status, _, err = runner.run(argv, fault)
    assert status == 143 and err == _warning("SIGTERM", tmp_path / "step_3.pt"), err
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["step_3.pt"]


def test_a_second_sigint_while_stopping_interrupts():
    dist = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    before = signal.getsignal(signal.SIGINT)
    with StopSignals(dist) as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)  # ignored: the run stops after this step anyway
        assert stop.received == signal.SIGTERM and stop.interrupts == 1
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is not before  # deferred until the process ends (exit 143)
    signal.signal(signal.SIGINT, before)


def test_sigint_alone_still_interrupts_at_once():
    dist = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    with StopSignals(dist), pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sighup_saves_the_step_and_exits_143_then_resumes_exactly(runner, data, reference_run, tmp_path):
    argv = ["train", *tiny_overrides(data, tmp_path, SPARSE)]
    status, _, err = runner.run(argv, {"kind": "signal", "at": 3, "signal": "SIGHUP"})
    assert status == 143 and err == _warning("SIGHUP", tmp_path / "step_3.pt"), err  # was: killed (-1), nothing
    status, out, err = runner.run(argv)
    assert status == 0 and f"resuming from {tmp_path / 'step_3.pt'} (step 3)" in out, err
    want = torch.load(reference_run / "epoch_2.pt", weights_only=True)["attention"]
    have = torch.load(tmp_path / "epoch_2.pt", weights_only=True)["attention"]
    assert all(torch.equal(want[k], have[k]) for k in want)
