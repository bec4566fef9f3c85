"""SIGTERM / SIGUSR1 (a cluster's preemption or time-limit warning): a checkpoint of the current step, exit 143,
and the rerun ends with the uninterrupted run's weights (docs/RELIABILITY.md, "Run folder, resume and preemption").

The runs checkpoint only at epoch ends (``train.checkpoint_every=0``), so without the signal's checkpoint a stop
mid-epoch would lose every step of the epoch so far.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from train_helpers import attention_of, tiny_overrides

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "WANDB_MODE": "disabled"}
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


def test_a_signal_to_one_torchrun_worker_stops_both_at_the_same_step(data, reference_run, tmp_path):
    """2 processes (gloo); only rank 1 gets SIGTERM, during its step 3. The ranks agree one step later (the
    all-reduce started at step 3 is read at step 4): both write nothing but step_4.pt, both exit 143; the rerun
    resumes from it to the one-process run's weights (within 1e-5, as test_worker_crash_under_torchrun...)."""
    run = tmp_path / "run"
    fault = {"kind": "signal", "at": 3, "rank": 1, "signal": "SIGTERM"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    argv = ["train", *tiny_overrides(data, run, SPARSE)]
    stopped = subprocess.run(
        [*launch, str(HERE / "fault_runner.py"), "run", json.dumps(fault), "--", *argv],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = stopped.stdout + stopped.stderr
    assert stopped.returncode != 0, output[-4000:]
    assert f"[rank 1] stopped by SIGTERM after step 4; checkpoint {run / 'step_4.pt'} written" in output, output[-4000:]
    assert "stopped by a stop signal to another process after step 4" in output
    assert "exitcode  : 143" in output  # torchrun's report of the workers
    assert sorted(p.name for p in run.glob("*.pt")) == ["step_4.pt"]
    done = subprocess.run(
        [*launch, "-m", "tame.cli", *argv], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0 and f"resuming from {run / 'step_4.pt'} (step 4)" in output, output[-4000:]
    expected = attention_of(reference_run / "epoch_2.pt")
    for key, value in attention_of(run / "epoch_2.pt").items():
        torch.testing.assert_close(value, expected[key], atol=1e-5, rtol=0, msg=key)


# -- the SLURM scripts ---------------------------------------------------------------------------------------------
STUB_SRUN = """#!/usr/bin/env bash
trap 'echo "srun: SIGTERM" >> "$LOG"; exit 1' TERM
echo "srun $*" >> "$LOG"
[ "$SRUN_EXIT" = wait ] || exit "$SRUN_EXIT"
sleep 30 & wait
"""
STUB_SCONTROL = """#!/usr/bin/env bash
if [ "$1" = show ]; then echo node1; else echo "scontrol $*" >> "$LOG"; fi
"""


@pytest.mark.parametrize("script", ["train_1node.sbatch", "train_multinode.sbatch"])
@pytest.mark.parametrize(("srun_exit", "requeued", "status"), [("wait", True, 0), ("143", True, 0), ("1", False, 1)])
def test_the_sbatch_scripts_requeue_on_the_time_limit_warning_or_exit_143(
    tmp_path, script, srun_exit, requeued, status
):
    """``--signal=B:USR1@120``: the script passes USR1 on as SIGTERM to srun and requeues the job; a step that
    exits 143 (workers stopped by SLURM's SIGTERM) is requeued too; any other failure is not. srun, scontrol and
    python are stubs."""
    import signal
    import time

    text = (REPO / "launch" / "slurm" / script).read_text()
    assert "#SBATCH --signal=B:USR1@120" in text and "#SBATCH --requeue" in text
    bin_dir, log = tmp_path / "bin", tmp_path / "log"
    bin_dir.mkdir()
    for name, body in (("srun", STUB_SRUN), ("scontrol", STUB_SCONTROL), ("python", "#!/usr/bin/env bash\n")):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {
        **ENV,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHON": str(bin_dir / "python"),
        "LOG": str(log),
        "SRUN_EXIT": srun_exit,
        "SLURM_JOB_ID": "77",
        "SLURM_JOB_NODELIST": "node1",
        "SLURM_NNODES": "1",
        "SLURM_SUBMIT_DIR": str(tmp_path),
    }
    job = subprocess.Popen(["bash", str(REPO / "launch" / "slurm" / script), "cfg.yaml"], env=env)
    if srun_exit == "wait":
        deadline = time.monotonic() + 20
        while not (log.exists() and "srun " in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        job.send_signal(signal.SIGUSR1)  # what SLURM sends 120 s before the time limit
    assert job.wait(timeout=30) == status
    lines = log.read_text().splitlines()
    assert ("scontrol requeue 77" in lines) == requeued, lines
    assert ("srun: SIGTERM" in lines) == (srun_exit == "wait"), lines
