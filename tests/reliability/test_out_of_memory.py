"""Out of memory during training (third probe, issue 25 item 16): under an address-space limit (``ulimit -v``, as
SLURM's memory limits set) the allocator's traceback ended the run. Now the training step turns the allocator's
error into one line naming the batch size to lower and the last good checkpoint, which stays intact."""

from __future__ import annotations

import re

import pytest
import torch
from train_helpers import tiny_overrides

MESSAGE = (
    r"out of memory at step {step} with a batch of 8 images per process \(data\.batch_size=8\): training stopped; "
    r"the last good checkpoint is {checkpoint} \(lower data\.batch_size, e\.g\. data\.batch_size=4, or give the "
    r"job more memory, then run again\)"
)


def _error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("tame: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("at", [3])
def test_a_real_address_space_limit_is_one_line(runner, data, tmp_path, at):
    """The process limits its own address space (RLIMIT_AS) at the start of step ``at`` to what it has plus 16 MB;
    the activations at 512 px need far more (the allocator may still serve a step from memory it kept mapped, so
    the failing step is ``at`` or a later one)."""
    argv = ["train", *tiny_overrides(data, tmp_path, "data.crop=512", "data.resize=512")]
    status, _, err = runner.run(argv, {"kind": "memory-limit", "at": at, "headroom_mb": 16})
    assert status == 2, err
    step = int(re.search(r"out of memory at step (\d+)", err).group(1))
    last = (step - 1) - (step - 1) % 2  # checkpoints every 2 steps, epochs of 6
    checkpoint = tmp_path / (f"epoch_{last // 6}.pt" if last % 6 == 0 else f"step_{last}.pt")
    assert at <= step < 12 and checkpoint.is_file(), err
    assert re.fullmatch(MESSAGE.format(step=step, checkpoint=re.escape(str(checkpoint))), _error_line(err)[13:]), err
    assert torch.load(checkpoint, weights_only=True)["step"] < step  # written before, intact


@pytest.mark.parametrize("error", ["cpu", "cuda", "python"])
def test_each_allocator_error_is_one_line(runner, data, tmp_path, error):
    fault = {"kind": "error", "at": 1, "error": error}
    status, _, err = runner.run(["train", *tiny_overrides(data, tmp_path)], fault)
    assert status == 2 and "out of memory at step 1" in _error_line(err), err
    assert "the last good checkpoint is none (none written yet)" in err


def test_another_runtime_error_is_not_called_out_of_memory(runner, data, tmp_path):
    fault = {"kind": "error", "at": 1, "error": "other"}
    status, _, err = runner.run(["train", *tiny_overrides(data, tmp_path)], fault)
    assert status != 2 and "out of memory" not in err and "mat1 and mat2" in err
