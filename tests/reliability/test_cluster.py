"""A cluster on one machine: launch/slurm/*.sbatch end to end, with ``sbatch``, ``srun`` and ``scontrol`` stubs that
record what they were asked (``srun`` really starts its command once per node), torchrun agents meeting in a c10d
rendezvous on 127.0.0.1, gloo (docs/RELIABILITY.md, "A cluster on one machine"; launch/README.md).

- two nodes x two processes train as one process, read every image once per epoch, write every checkpoint once,
  validate and evaluate sharded over the four ranks with the one-process numbers;
- a preempted job (SIGTERM to a worker) is requeued, not restarted in place by torchrun, and continues;
- a crashed worker is restarted by torchrun and the job continues from the last step checkpoint;
- a half-launched job (SLURM variables promising tasks that srun never started) is refused in one line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from train_helpers import attention_of, tiny_overrides

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "TQDM_DISABLE": "1",
    "WANDB_MODE": "disabled",
    "MPLBACKEND": "Agg",
    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
}
SPARSE = "train.checkpoint_every=0"  # checkpoints at epoch ends only (and at a stop)

SBATCH = r"""#!/usr/bin/env bash
# sbatch [--nodes=N] SCRIPT ARGS...: record the submission, then run SCRIPT as SLURM runs a batch job: one task
# per node (--ntasks-per-node=1), the batch script being task 0 (its SLURM_NTASKS are not its processes)
echo "sbatch $*" >> "$LOG"
export SLURM_NNODES=1 SLURM_PROCID=0 SLURM_LOCALID=0
while [[ $1 == --* ]]; do
    if [[ $1 == --nodes=* ]]; then SLURM_NNODES=${1#--nodes=}; fi
    shift
done
export SLURM_NTASKS=$SLURM_NNODES
exec bash "$@"
"""
SRUN = r"""#!/usr/bin/env bash
# srun [--option...] COMMAND...: record, then start COMMAND once per node (SLURM_NNODES tasks, all on this machine)
# with the variables srun gives its tasks; SIGTERM is passed on; the exit status is the highest of the tasks'
echo "srun $*" >> "$LOG"
while [[ $1 == --* ]]; do shift; done
tasks=()
interrupted=0
trap 'interrupted=1; echo "srun: SIGTERM" >> "$LOG"; kill -TERM "${tasks[@]}" 2>/dev/null' TERM
for ((node = 0; node < SLURM_NNODES; node++)); do
    SLURM_NODEID=$node SLURM_PROCID=$node SLURM_STEP_ID=0 SLURM_STEP_NUM_TASKS=$SLURM_NNODES "$@" &
    tasks+=($!)
done
status=0
for task in "${tasks[@]}"; do
    while :; do
        interrupted=0
        code=0
        wait "$task" || code=$?
        [ "$interrupted" = 1 ] || break
    done
    if ((code > status)); then status=$code; fi
done
exit "$status"
"""
SCONTROL = r"""#!/usr/bin/env bash
if [ "$1 $2" = "show hostnames" ]; then echo 127.0.0.1; else echo "scontrol $*" >> "$LOG"; fi
"""
# the cluster's python: with FAULT set, `-m tame.cli` runs under fault_runner.py with that fault installed
PYTHON = r"""#!/usr/bin/env bash
args=()
while (($#)); do
    if [ "$1" = -m ] && [ "${2:-}" = tame.cli ] && [ -n "${FAULT:-}" ]; then
        args+=("$RUNNER" run "$FAULT" --)
        shift 2
    else
        args+=("$1")
        shift
    fi
done
exec "$REAL_PYTHON" "${args[@]}"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Cluster:
    """A folder of stubs and their log; :meth:`submit` runs a job as ``sbatch`` would."""

    folder: Path

    def __post_init__(self) -> None:
        self.bin = self.folder / "bin"
        self.bin.mkdir(parents=True)
        self.log = self.folder / "asked.log"
        self.stopped = self.folder / "stopped"
        for name, body in (("sbatch", SBATCH), ("srun", SRUN), ("scontrol", SCONTROL), ("python", PYTHON)):
            (self.bin / name).write_text(body)
            (self.bin / name).chmod(0o755)

    def env(self, processes: int, fault: dict | None = None, **extra: str) -> dict[str, str]:
        return {
            **ENV,
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "LOG": str(self.log),
            "SLURM_JOB_ID": "77",
            "SLURM_JOB_NODELIST": "node[1-2]",
            "SLURM_SUBMIT_DIR": str(REPO),
            "SLURM_GPUS_ON_NODE": str(processes),
            "MASTER_PORT": str(free_port()),
            "PYTHON": str(self.bin / "python"),
            "REAL_PYTHON": sys.executable,
            "RUNNER": str(HERE / "fault_runner.py"),
            "FAULT": json.dumps(fault) if fault else "",
            "TAME_PREEMPTED_FILE": str(self.stopped),  # the scripts' default is .tame-stopped-JOBID in the repo
            **extra,
        }

    def submit(self, script: str, overrides: list[str], *, nodes: int = 1, processes: int = 2, **env) -> str:
        """``sbatch --nodes=N launch/slurm/SCRIPT CONFIG overrides``; returns the job's output (exit status checked
        by the caller through :attr:`status`)."""
        config = self.folder / "tiny.yaml"
        config.write_text("{}\n")
        job = subprocess.run(
            ["sbatch", f"--nodes={nodes}", f"launch/slurm/{script}", str(config), *overrides],
            cwd=REPO,
            env=self.env(processes, **env),
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.status = job.returncode
        return job.stdout + job.stderr

    def asked(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def assert_trained_as(run: Path, reference: Path) -> None:
    """N processes x B/N == 1 process x B, up to float rounding (as tests/test_train.py's 2-process test)."""
    expected = attention_of(reference / "epoch_2.pt")
    for key, value in attention_of(run / "epoch_2.pt").items():
        torch.testing.assert_close(value, expected[key], atol=1e-5, rtol=0, msg=key)


def read_records(folder: Path) -> dict[int, list[dict]]:
    return {
        int(path.stem.removeprefix("rank")): [json.loads(line) for line in path.read_text().splitlines()]
        for path in sorted(folder.glob("rank*.jsonl"))
    }


# -- two nodes -----------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_nodes_of_two_processes_train_validate_and_evaluate_as_one_process(runner, data, reference_run, tmp_path):
    """train_multinode.sbatch with --nodes=2 and 2 GPUs per node: srun starts two torchrun agents, which meet on the
    first node (c10d on 127.0.0.1) and start RANK 0-1 (node 0) and 2-3 (node 1), LOCAL_RANK 0-1 on each."""
    cluster = Cluster(tmp_path / "cluster")
    run, records = tmp_path / "run", tmp_path / "records"
    validation = [f"data.val_list={data / 'val.txt'}", f"data.val_root={data}"]
    output = cluster.submit(
        "train_multinode.sbatch",
        tiny_overrides(data, run, *validation),
        nodes=2,
        fault={"kind": "record", "at": 0, "to": str(records)},
    )
    assert cluster.status == 0, output[-4000:]
    asked = cluster.asked()
    assert asked[0].startswith("sbatch --nodes=2 launch/slurm/train_multinode.sbatch"), asked
    assert "--nnodes=2 --nproc_per_node=2 --max-restarts=3 --rdzv-backend=c10d --rdzv-endpoint=127.0.0.1:" in asked[1]
    assert not any(line.startswith("scontrol requeue") for line in asked)
    state = torch.load(run / "epoch_2.pt", weights_only=True)
    assert state["world_size"] == 4 and state["rng"]["torch"].shape[0] == 4
    assert_trained_as(run, reference_run)

    assert_each_image_read_once_and_one_writer(read_records(records))

    one = tmp_path / "one"  # the same run in one process: its validation numbers
    status, _, err = runner.run(["train", *tiny_overrides(data, one, *validation)])
    assert status == 0, err
    four_val = json.loads((run / "train_record.json").read_text())["val"]
    one_val = json.loads((one / "train_record.json").read_text())["val"]
    assert len(four_val) == len(one_val) == 2
    for mine, theirs in zip(four_val, one_val):
        assert mine.keys() == theirs.keys()
        # area, var and so loss span each rank's own validation batch (the 'batch' regulariser,
        # tame/engine/validation.py): they depend on how the images are batched; the rest is per image
        for key in sorted(theirs.keys() - {"loss", "area", "var", "seconds"}):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-4), key

    evaluate_argv = [
        *("eval", "--config", str(run / "config.yaml"), "--checkpoint", str(run / "epoch_2.pt")),
        *("--list", str(data / "val.txt"), "--root", str(data)),
    ]
    outputs, codes = on_two_nodes([*evaluate_argv, "--out", str(tmp_path / "eval4")])
    assert codes == [0, 0], "\n".join(o[-3000:] for o in outputs)
    status, _, err = runner.run([*evaluate_argv, "--out", str(tmp_path / "eval1")])
    assert status == 0, err
    (four,), (one,) = (list((tmp_path / name).glob("*.json")) for name in ("eval4", "eval1"))
    four, one = json.loads(four.read_text()), json.loads(one.read_text())
    assert_same_numbers(four, one)


def on_two_nodes(argv: list[str]) -> tuple[list[str], list[int]]:
    """``tame argv`` on 2 x 2 processes: two torchrun agents (the nodes) meeting in a c10d rendezvous on 127.0.0.1;
    their outputs and exit statuses."""
    port = free_port()
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=2", "--rdzv-backend=c10d"),
        *(f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes", "-m", "tame.cli", *argv),
    ]
    agents = [
        subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [agent.communicate(timeout=300)[0] for agent in agents]
    return outputs, [agent.returncode for agent in agents]


def assert_each_image_read_once_and_one_writer(by_rank: dict[int, list[dict]]) -> None:
    """The recorder's lines of a 4-rank run of the tiny set (48 training images, 6 validation images)."""
    assert sorted(by_rank) == [0, 1, 2, 3]
    for epoch in (0, 1):  # each training image once per epoch over the four ranks, 12 (6 steps x 2) on each
        reads = [
            r["indices"]
            for entries in by_rank.values()
            for r in entries
            if r.get("list") == "train.txt" and r["epoch"] == epoch
        ]
        assert len(reads) == 4 and all(len(r) == 12 for r in reads)
        assert sorted(i for r in reads for i in r) == list(range(48))
    validations = [[r["indices"] for r in by_rank[rank] if r.get("list") == "val.txt"] for rank in range(4)]
    assert all(len(v) == 2 for v in validations)  # after each epoch, on every rank
    for passes in zip(*validations):  # each validation image once over the four ranks (padding not counted)
        assert sorted(i for p in passes for i in p) == list(range(6))
    saved = [(rank, r["saved"]) for rank, entries in by_rank.items() for r in entries if "saved" in r]
    names = ["step_2.pt", "step_4.pt", "epoch_1.pt", "step_8.pt", "step_10.pt", "epoch_2.pt"]
    assert saved == [(0, name) for name in names]  # one writer for the job: rank 0, each file once


def assert_same_numbers(mine, theirs, where: str = "") -> None:
    """Every number of ``theirs`` (nested dicts and lists) in ``mine``, within 1e-4; timings left out."""
    if isinstance(theirs, dict):
        for key, value in theirs.items():
            if not any(word in key for word in ("ms", "second", "time", "images/s")):
                assert_same_numbers(mine[key], value, f"{where}.{key}")
    elif isinstance(theirs, list):
        assert len(mine) == len(theirs), where
        for i, (a, b) in enumerate(zip(mine, theirs)):
            assert_same_numbers(a, b, f"{where}[{i}]")
    elif isinstance(theirs, float):
        assert mine == pytest.approx(theirs, abs=1e-4), where
    else:
        assert mine == theirs, where


# -- preemption and crashes -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_preempted_job_is_requeued_not_restarted_and_continues(data, reference_run, tmp_path):
    """SIGTERM to rank 1 during its step 3 (as SLURM's preemption signals the job's processes): the ranks agree one
    step later, step_4.pt is written, the workers exit 0 so that torchrun (--max-restarts=3) does not restart them,
    rank 0 reports the stop and the script requeues the job. The requeued job resumes from step 4 and ends with the
    one-process weights."""
    cluster = Cluster(tmp_path / "cluster")
    run = tmp_path / "run"
    overrides = tiny_overrides(data, run, SPARSE)
    fault = {"kind": "signal", "at": 3, "rank": 1, "signal": "SIGTERM"}
    output = cluster.submit("train_1node.sbatch", overrides, fault=fault)
    assert cluster.status == 0, output[-4000:]
    stop = f"stopped by SIGTERM after step 4; checkpoint {run / 'step_4.pt'} written"
    assert f"[rank 1] {stop}" in output and "stopped by a stop signal to another process after step 4" in output
    assert "(exit 0 under torchrun, which restarts workers that fail)" in output
    assert "resuming from" not in output, output[-4000:]  # torchrun did not restart the workers in place
    assert sorted(p.name for p in run.glob("*.pt")) == ["step_4.pt"]
    assert cluster.asked()[-1] == "scontrol requeue 77" and not cluster.stopped.exists()

    output = cluster.submit("train_1node.sbatch", overrides)  # SLURM runs the requeued job again
    assert cluster.status == 0, output[-4000:]
    assert f"resuming from {run / 'step_4.pt'} (step 4)" in output, output[-4000:]
    assert sum(line == "scontrol requeue 77" for line in cluster.asked()) == 1  # a finished run is not requeued
    assert_trained_as(run, reference_run)


@pytest.mark.slow
def test_a_crashed_worker_is_restarted_by_torchrun_and_the_job_finishes(data, reference_run, tmp_path):
    """Rank 1 dies (SIGKILL) at its 5th step, once: torchrun (MAX_RESTARTS=1) restarts both workers, which resume
    from step_4.pt; the job ends without a requeue, with the one-process weights."""
    for attempt in range(2):
        cluster = Cluster(tmp_path / f"cluster{attempt}")
        run, marker = tmp_path / f"run{attempt}", tmp_path / f"crashed{attempt}"
        fault = {"kind": "step", "at": 5, "rank": 1, "once": str(marker)}
        output = cluster.submit("train_1node.sbatch", tiny_overrides(data, run), fault=fault, MAX_RESTARTS="1")
        # Under heavy CPU load a restarted gloo worker has (once in a CI dry run) aborted inside gloo's C++ connect
        # ("terminate called without an active exception") before our code ran: the launcher's environment, not the
        # resume under test. Run the scenario once more, fresh.
        if cluster.status != 0 and attempt == 0 and "terminate called without an active exception" in output:
            continue
        break
    assert cluster.status == 0, output[-4000:]
    assert marker.exists() and f"resuming from {run / 'step_4.pt'} (step 4)" in output, output[-4000:]
    assert not any(line.startswith("scontrol requeue") for line in cluster.asked())
    assert_trained_as(run, reference_run)


# -- the scripts' decisions, with a stand-in for torchrun --------------------------------------------------------------
FAKE_TORCHRUN = r"""#!/usr/bin/env bash
case " $* " in *" --check "*) exit 0 ;; esac  # tame train --check: the run is fine
echo "python $*" >> "$LOG"
case "$BEHAVE" in
    wait) trap 'exit 1' TERM; sleep 30 & wait; exit 1 ;;  # torchrun exits 1 when it is stopped by SIGTERM
    stopped) echo "stopped by SIGTERM after step 4" > "$TAME_PREEMPTED_FILE"; exit 0 ;;  # workers exit 0
    *) exit "$BEHAVE" ;;
esac
"""


@pytest.mark.parametrize("script", ["train_1node.sbatch", "train_multinode.sbatch"])
@pytest.mark.parametrize(
    ("behave", "requeued", "status"),
    [("wait", True, 0), ("stopped", True, 0), ("143", True, 0), ("1", False, 1), ("0", False, 0)],
)
def test_the_sbatch_scripts_requeue_a_stopped_job_only(tmp_path, script, behave, requeued, status):
    """``--signal=B:USR1@120`` (wait): USR1 is passed on as SIGTERM to srun and the job requeued; workers that
    reported a stop (stopped), or srun tasks that exit 143 (srun without torchrun), are requeued too; a failure (1)
    or a finished run (0) is not."""
    text = (REPO / "launch" / "slurm" / script).read_text()
    assert "#SBATCH --signal=B:USR1@120" in text and "#SBATCH --requeue" in text
    cluster = Cluster(tmp_path)
    (cluster.bin / "python").write_text(FAKE_TORCHRUN)
    env = cluster.env(2, BEHAVE=behave)
    job = subprocess.Popen(["sbatch", f"launch/slurm/{script}", "cfg.yaml"], cwd=REPO, env=env)
    if behave == "wait":
        deadline = time.monotonic() + 60
        while not any(line.startswith("python ") for line in cluster.asked()) and time.monotonic() < deadline:
            time.sleep(0.05)
        job.send_signal(signal.SIGUSR1)  # what SLURM sends 120 s before the time limit
    assert job.wait(timeout=60) == status
    asked = cluster.asked()
    assert ("scontrol requeue 77" in asked) == requeued, asked
    assert ("srun: SIGTERM" in asked) == (behave == "wait"), asked
    assert not cluster.stopped.exists()


@pytest.mark.parametrize(("behave", "status"), [("stopped", 143), ("0", 0), ("1", 1), ("wait", 143)])
def test_torchrun_sh_exits_143_when_the_workers_were_stopped(tmp_path, behave, status):
    """launch/torchrun.sh (make train GPUS=N): workers that reported a stop end the script with 143, as one process
    does; SIGTERM to the script is passed on to torchrun (whose workers then report the stop)."""
    cluster = Cluster(tmp_path)
    fake = FAKE_TORCHRUN.replace("trap 'exit 1' TERM", "trap 'echo stopped > \"$TAME_PREEMPTED_FILE\"; exit 1' TERM")
    (cluster.bin / "python").write_text(fake)
    env = {**cluster.env(2, BEHAVE=behave), "GPUS": "2", "TMPDIR": str(tmp_path)}
    del env["TAME_PREEMPTED_FILE"]  # the script picks its own
    job = subprocess.Popen(["bash", "launch/torchrun.sh", "train", "configs/synthetic.yaml"], cwd=REPO, env=env)
    if behave == "wait":
        deadline = time.monotonic() + 60
        while not any(line.startswith("python ") for line in cluster.asked()) and time.monotonic() < deadline:
            time.sleep(0.05)
        job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == status
    assert "--max-restarts=0" in cluster.asked()[0] and not list(tmp_path.glob("tame-stopped.*"))


# -- half-launched jobs ------------------------------------------------------------------------------------------------
HALF_LAUNCHED = {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "node1", "SLURM_JOB_ID": "7"}
NO_SRUN = r"^tame: error: started without srun\? SLURM_NTASKS=2 promises 2 processes"


def test_a_half_launched_job_stops_at_once_in_one_line(data, tmp_path):
    """`tame train` called straight from a batch script of --ntasks=2 (no srun): it used to wait, silent, for a rank
    1 that never came, until killed."""
    env = {**ENV, **HALF_LAUNCHED}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_STEP_NUM_TASKS", "TORCHELASTIC_RESTART_COUNT"):
        env.pop(name, None)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tame.cli", "train", *tiny_overrides(data, tmp_path / "run")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert time.monotonic() - started < 30
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("tame: error: started without srun? SLURM_NTASKS=2 promises 2 processes")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["eval", "check"])
def test_eval_and_the_check_refuse_a_half_launched_job(cli_here, monkeypatch, data, tmp_path, command):
    for name, value in HALF_LAUNCHED.items():
        monkeypatch.setenv(name, value)
    for name in ("RANK", "WORLD_SIZE", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(name, raising=False)
    overrides = tiny_overrides(data, tmp_path / "run")
    if command == "check":  # it used to say "the run will start"
        result = cli_here("train", "--check", *overrides)
    else:
        config = tmp_path / "tiny.yaml"
        config.write_text("{}\n")
        argv = ["--method", "gradcam", "--list", data / "val.txt", "--root", data]
        result = cli_here("eval", "--config", config, *overrides, *argv)
    result.assert_one_error_line(NO_SRUN)
    # the sbatch scripts check a torchrun launch of N processes per node: this process's variables do not apply
    if command == "check":
        assert cli_here("train", "--check", "--nproc", "2", *overrides).code == 0
