"""Launch resolution (torchrun / SLURM / single process, simulated), device choice and the synchronised BatchNorm."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torch import nn

from tame.distributed import (
    Dist,
    Launch,
    SyncBatchNorm2d,
    convert_sync_batchnorm,
    data_parallel,
    first_host,
    label_gatherer,
    pick_device,
    resolve_launch,
    setup,
    sync_batchnorm,
    varying_label_gatherer,
)
from tame.errors import TameError

REPO = Path(__file__).resolve().parents[1]


def test_no_launcher_means_one_process():
    assert resolve_launch({}) == Launch()


def test_torchrun_variables_win_over_slurm():
    env = {
        "RANK": "3",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "4",
        "SLURM_PROCID": "0",
        "SLURM_NTASKS": "2",
        "SLURM_JOB_NODELIST": "n[1-2]",
    }
    launch = resolve_launch(env)
    assert (launch.rank, launch.world_size, launch.local_rank, launch.local_world_size) == (3, 8, 1, 4)
    assert launch.source == "torchrun" and launch.master_addr is None  # torchrun provides the rendezvous


def test_srun_without_torchrun():
    env = {
        "SLURM_PROCID": "5",
        "SLURM_NTASKS": "8",
        "SLURM_LOCALID": "1",
        "SLURM_NTASKS_PER_NODE": "4(x2)",
        "SLURM_JOB_NODELIST": "gpu[003-004]",
        "SLURM_JOB_ID": "12345",
        "SLURM_STEP_NUM_TASKS": "8",  # srun sets the SLURM_STEP_* variables for the tasks it starts
        "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
    }
    launch = resolve_launch(env)
    assert (launch.rank, launch.world_size, launch.local_rank, launch.local_world_size) == (5, 8, 1, 4)
    assert (launch.source, launch.master_addr, launch.master_port) == ("slurm", "gpu003", 32345)
    assert resolve_launch({**env, "MASTER_ADDR": "head", "MASTER_PORT": "29400"}).master_port == 29400


def test_one_slurm_task_is_one_process():  # e.g. the sbatch script itself, before torchrun starts
    assert resolve_launch({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == Launch()
    # `srun -n 1` inside an allocation of 2 tasks: the step has one task
    assert resolve_launch({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_STEP_NUM_TASKS": "1"}) == Launch()


def test_a_half_launched_job_is_refused_at_once():
    """A batch script of --ntasks=2 that calls `tame train` itself (no srun): one process would wait for a rank 1
    that nobody starts (it used to, silently, until killed)."""
    env = {"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "node1", "SLURM_JOB_ID": "7"}
    with pytest.raises(TameError, match=r"^started without srun\? SLURM_NTASKS=2 promises 2 processes"):
        resolve_launch(env)
    assert resolve_launch({**env, "RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}).source == "torchrun"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SRUN_TASK = """
import sys, torch, torch.distributed as torch_dist
from tame.distributed import setup
dist = setup("cpu")
total = torch.tensor([float(dist.rank + 1)])
torch_dist.all_reduce(total)
print(dist.rank, dist.world_size, int(total.item()))
torch_dist.destroy_process_group()
"""


def test_tasks_started_by_srun_without_torchrun_meet_in_our_store():
    """srun starting one task per GPU itself: the tasks meet in a TCP store on the first node's host (rank 0's)."""
    import os
    import subprocess
    import sys

    port, processes = free_port(), []
    for rank in (1, 0):  # rank 1 first: it waits, quietly, for rank 0's store to listen
        env = {**os.environ, "OMP_NUM_THREADS": "1", "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)}
        env |= {"SLURM_NTASKS": "2", "SLURM_STEP_NUM_TASKS": "2", "SLURM_JOB_NODELIST": "127.0.0.1"}
        env |= {"MASTER_PORT": str(port), "TAME_RENDEZVOUS_TIMEOUT": "60"}
        for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "TORCHELASTIC_RESTART_COUNT", "MASTER_ADDR"):
            env.pop(name, None)
        task = subprocess.Popen([sys.executable, "-c", SRUN_TASK], env=env, stdout=subprocess.PIPE, text=True)
        processes.append(task)
    outputs = sorted(process.communicate(timeout=120)[0].strip() for process in processes)
    assert [process.returncode for process in processes] == [0, 0]
    assert outputs == ["0 2 3", "1 2 3"]


@pytest.mark.parametrize("rank", [0, 1])
def test_a_rendezvous_that_never_completes_is_one_line_after_the_timeout(rank):
    """srun started the tasks, but the other one never arrives (rank 0 waits for it; rank 1 finds nobody listening):
    TAME_RENDEZVOUS_TIMEOUT seconds, then one line naming the address, instead of torch's 30-minute wait."""
    import time

    port = free_port()
    env = {
        "SLURM_PROCID": str(rank),
        "SLURM_LOCALID": str(rank),
        "SLURM_NTASKS": "2",
        "SLURM_STEP_NUM_TASKS": "2",
        "SLURM_JOB_NODELIST": "127.0.0.1",
        "MASTER_PORT": str(port),
        "TAME_RENDEZVOUS_TIMEOUT": "1.5",
    }
    started = time.monotonic()
    with pytest.raises(TameError) as caught:
        setup("cpu", env=env)
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert message.startswith(f"rank {rank} of 2: the rendezvous at 127.0.0.1:{port} did not complete within 1.5 s")
    assert "TAME_RENDEZVOUS_TIMEOUT" in message and "\n" not in message and not torch_dist.is_initialized()
    with pytest.raises(TameError, match="TAME_RENDEZVOUS_TIMEOUT='soon' must be a number of seconds"):
        setup("cpu", env={**env, "TAME_RENDEZVOUS_TIMEOUT": "soon"})


@pytest.mark.parametrize(
    "nodelist, host",
    [("node7", "node7"), ("gpu[003-006,9],cpu1", "gpu003"), ("a-[12,15]-ib", "a-12-ib"), ("x1,x2", "x1")],
)
def test_first_host_of_a_nodelist(nodelist, host):
    assert first_host(nodelist) == host


def test_bad_variable_is_one_clear_error():
    with pytest.raises(TameError, match="WORLD_SIZE='four'"):
        resolve_launch({"RANK": "0", "WORLD_SIZE": "four", "LOCAL_RANK": "0"})


def test_more_processes_than_gpus_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("auto", local_rank=1, local_world_size=2) == torch.device("cuda", 1)
    with pytest.raises(TameError, match=r"GPUS=4 .* only 2 CUDA"):
        pick_device("auto", local_rank=0, local_world_size=4)
    assert pick_device("cpu", 0, 4) == torch.device("cpu")


def test_cuda_asked_for_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TameError, match="train.device"):
        pick_device("cuda")


def test_single_process_setup_starts_no_group():
    dist = setup("cpu", env={})
    assert dist == Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    assert not dist.distributed and dist.is_main and not torch_dist.is_initialized()


def test_the_training_step_is_wrapped_without_buffer_broadcasts(tmp_path):
    """gloo (CPU): our SyncBatchNorm2d in the AM, and no broadcast of the frozen classifier's buffers every step."""
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        attention = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
        step = nn.Sequential(nn.BatchNorm2d(3).requires_grad_(False), attention)
        wrapped = data_parallel(step, Dist(0, 1, 0, torch.device("cpu")), attention)
        assert not wrapped.will_sync_module_buffers() and wrapped.module is step
        assert type(attention[1]) is SyncBatchNorm2d and type(step[0]) is nn.BatchNorm2d
    finally:
        torch_dist.destroy_process_group()


def test_a_backbone_in_training_mode_gets_synchronised_batchnorm(tmp_path):
    """backbone_mode train: the frozen classifier's BatchNorm normalises by the global batch too (its weights stay
    frozen; in eval mode it is plain BatchNorm)."""
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        attention = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
        backbone = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3)).requires_grad_(False)
        data_parallel(nn.Sequential(backbone, attention), Dist(0, 1, 0, torch.device("cpu")), attention, [backbone])
        assert type(attention[1]) is SyncBatchNorm2d and type(backbone[1]) is SyncBatchNorm2d
        assert not backbone[1].weight.requires_grad
    finally:
        torch_dist.destroy_process_group()


def test_torchrun_sh_checks_lr_find_with_its_own_options(tmp_path):
    """GPUS>1: the check before torchrun is `tame lr-find --check` with every option given (before: `tame train
    --check`, which refused --end-lr: exit 2)."""
    calls = tmp_path / "calls"
    stub = tmp_path / "python"  # records how it was called instead of running anything
    stub.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    stub.chmod(0o755)
    args = ["lr-find", "configs/synthetic.yaml", "--end-lr", "100", "data.batch_size=8"]
    env = {**os.environ, "GPUS": "2", "PYTHON": str(stub)}
    done = subprocess.run(["bash", "launch/torchrun.sh", *args], cwd=REPO, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    check, start = calls.read_text().splitlines()
    options = "--config configs/synthetic.yaml --end-lr 100 data.batch_size=8"
    assert check == f"-m tame.cli lr-find --check --nproc 2 {options}"
    assert start.startswith("-m torch.distributed.run --standalone --nproc_per_node=2")
    assert start.endswith(f"-m tame.cli lr-find {options}")


@pytest.mark.gpu
def test_on_cuda_the_am_uses_torch_syncbatchnorm():
    """nccl: torch.nn.SyncBatchNorm (fused CUDA kernels) replaces each BatchNorm2d, keeping its parameters and
    state-dict keys; in eval mode it computes what the BatchNorm2d did."""
    cuda = Dist(0, 1, 0, torch.device("cuda", 0))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).cuda().eval()
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
    x = torch.randn(2, 3, 8, 8, device="cuda")
    before, state = net(x), {k: v.clone() for k, v in net.state_dict().items()}
    weight = net[1].weight
    sync_batchnorm(net, cuda)
    assert type(net[1]) is nn.SyncBatchNorm and net[1].weight is weight
    after = net.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(state[k], v) for k, v in after.items())
    torch.testing.assert_close(net(x), before)


@pytest.mark.gpu
def test_on_cuda_the_training_step_is_ddp_over_nccl_without_buffer_broadcasts(tmp_path):
    """One GPU suffices: a one-rank nccl group; DDP on the device, torch's SyncBatchNorm in the AM, no buffers
    broadcast before the forward, gradients reach the AM only."""
    torch_dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        cuda = Dist(0, 1, 0, torch.device("cuda", 0))
        attention = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).cuda()
        frozen = nn.BatchNorm2d(3).cuda().eval().requires_grad_(False)
        wrapped = data_parallel(nn.Sequential(frozen, attention), cuda, attention)
        assert type(attention[1]) is nn.SyncBatchNorm and not wrapped.will_sync_module_buffers()
        wrapped(torch.randn(2, 3, 8, 8, device="cuda")).square().mean().backward()
        assert attention[0].weight.grad is not None and frozen.weight.grad is None
    finally:
        torch_dist.destroy_process_group()


def test_conversion_keeps_state_dict_keys():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm2d(4, momentum=None)))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    convert_sync_batchnorm(net)
    assert isinstance(net[1], SyncBatchNorm2d) and isinstance(net[2][0], SyncBatchNorm2d)
    assert net[2][0].momentum is None
    assert (
        all(torch.equal(before[k], v) for k, v in net.state_dict().items()) and before.keys() == net.state_dict().keys()
    )


def _sync_bn_worker(rank: int, world: int, init_file: str, inputs, grad_weights, results) -> None:
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        bn = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm2d(3)))[0]
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
            bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        part = slice(rank * 2, rank * 2 + 2)  # 2 of 4 images each
        x = inputs[part].clone().requires_grad_(True)
        out = bn(x)
        (out * grad_weights[part]).sum().backward()
        labels, offset = label_gatherer(Dist(rank, world, rank, torch.device("cpu")))(torch.tensor([rank, 10 + rank]))
        varying = varying_label_gatherer(Dist(rank, world, rank, torch.device("cpu")))
        uneven = varying(torch.tensor([7, 8]) if rank == 0 else torch.empty(0, dtype=torch.long))  # validation's
        results[rank] = {
            "out": out.detach(),
            "x_grad": x.grad,
            "w_grad": bn.weight.grad,
            "b_grad": bn.bias.grad,
            "mean": bn.running_mean,
            "var": bn.running_var,
            "labels": labels,
            "offset": offset,
            "uneven": uneven,
        }
    finally:
        torch_dist.destroy_process_group()


def test_sync_batchnorm_over_two_ranks_equals_batchnorm_over_the_global_batch(tmp_path):
    inputs = torch.randn(4, 3, 5, 5) * 3 + 1
    grad_weights = torch.randn(4, 3, 5, 5)
    results = mp.Manager().dict()
    mp.spawn(_sync_bn_worker, args=(2, str(tmp_path / "store"), inputs, grad_weights, results), nprocs=2)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    x = inputs.clone().requires_grad_(True)
    out = bn(x)
    (out * grad_weights).sum().backward()
    ranks = [results[0], results[1]]
    close = dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([r["out"] for r in ranks]), out.detach(), **close)
    torch.testing.assert_close(torch.cat([r["x_grad"] for r in ranks]), x.grad, **close)
    torch.testing.assert_close(
        ranks[0]["w_grad"] + ranks[1]["w_grad"], bn.weight.grad, **close
    )  # DDP all-reduces these
    torch.testing.assert_close(ranks[0]["b_grad"] + ranks[1]["b_grad"], bn.bias.grad, **close)
    for r in ranks:
        torch.testing.assert_close(r["mean"], bn.running_mean, **close)
        torch.testing.assert_close(r["var"], bn.running_var, **close)  # unbiased, as BatchNorm2d
        assert r["labels"].tolist() == [0, 10, 1, 11]
        assert r["uneven"][0].tolist() == [7, 8]
    assert (ranks[0]["uneven"][1], ranks[1]["uneven"][1]) == (0, 2)
    assert (ranks[0]["offset"], ranks[1]["offset"]) == (0, 2)
