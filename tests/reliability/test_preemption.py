"""SIGTERM / SIGUSR1 (a cluster's preemption or time-limit warning): a checkpoint of the current step, exit 143,
and the rerun ends with the uninterrupted run's weights (docs/RELIABILITY.md, "Run folder, resume and preemption").

The runs checkpoint only at epoch ends (``train.checkpoint_every=0``), so without the signal's checkpoint a stop
mid-epoch would lose every step of the epoch so far.
"""

from __future__ import annotations

import random

import pytest
import torch
from train_helpers import attention_of, tiny_overrides

SPARSE = "train.checkpoint_every=0"

_rng = random.Random(143)
TRIALS = [("SIGTERM", step) for step in sorted(_rng.sample(range(1, 12), 3))] + [("SIGUSR1", _rng.randint(1, 11))]
TRIALS += [("SIGTERM", 6)]  # an epoch's last step: the epoch checkpoint is the stop's


def checkpoint_name(step: int) -> str:
    return f"epoch_{step // 6}.pt" if step % 6 == 0 else f"step_{step}.pt"


@pytest.mark.parametrize(("name", "at"), TRIALS, ids=[f"{n}-{s}" for n, s in TRIALS])
def test_a_signal_saves_the_step_and_exits_143_then_resumes_exactly(runner, data, reference_run, tmp_path, name, at):
    argv = ["train", *tiny_overrides(data, tmp_path, SPARSE)]
    status, out, err = runner.run(argv, {"kind": "signal", "at": at, "signal": name})
    saved = tmp_path / checkpoint_name(at)
    assert status == 143, err  # used to die by the signal (-15, or -10 for SIGUSR1) with nothing saved
    assert err == (
        f"tame: warning: stopped by {name} after step {at}; checkpoint {saved} written: run the same command "
        "again to continue (exit 143)\n"
    )
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == sorted(
        {"epoch_1.pt", saved.name} if at > 6 else {saved.name}
    )
    status, out, err = runner.run(argv)
    assert status == 0 and err == "", err
    assert f"resuming from {saved} (step {at})" in out  # no step lost
    want, have = attention_of(reference_run / "epoch_2.pt"), attention_of(tmp_path / "epoch_2.pt")
    assert all(torch.equal(want[k], have[k]) for k in want)


def test_a_signal_at_the_last_step_lets_the_run_finish(runner, data, reference_run, tmp_path):
    status, out, err = runner.run(
        ["train", *tiny_overrides(data, tmp_path, SPARSE)], {"kind": "signal", "at": 12, "signal": "SIGTERM"}
    )
    assert status == 0 and err == "" and "training done" in out, err
    want, have = attention_of(reference_run / "epoch_2.pt"), attention_of(tmp_path / "epoch_2.pt")
    assert all(torch.equal(want[k], have[k]) for k in want)


# Under torchrun and through the SLURM scripts (a stop reported, the job requeued, not restarted in place):
# tests/reliability/test_cluster.py.
