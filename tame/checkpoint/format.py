"""The checkpoint file formats, read without executing code and checked before anything is restored from them.

Two formats, both plain dicts of tensors and numbers (``torch.load(weights_only=True)`` reads them; ``.safetensors``
too, through :func:`tame.io.load_tensor_file`), written atomically:

- a training checkpoint (``format: tame-train/1``): ``attention``, ``optimizer``, ``scheduler``, ``scaler``,
  ``epoch`` (epochs completed), ``step`` (optimiser steps completed), ``steps_per_epoch``, ``world_size``, ``rng``
  (every rank's torch CPU/CUDA generator states, stacked), ``config`` (resolved), ``meta`` (what the AM fits);
- an AM file (``format: tame-attention/1``, ``TameModel.save_attention``): ``attention`` and ``meta`` (model,
  layers, version, num_classes, size, token transform, preprocessing).

:func:`read_attention_file` reads the AM out of either, of an original TAME snapshot (``state_dict`` with ``attn.``
keys) or of a bare AM state dict. :func:`check_finite` and :func:`check_state_dict` are the checks every loaded
state goes through (the classifier's weights too). Names and discovery: :mod:`tame.checkpoint.naming`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from tame.checkpoint.naming import step_checkpoints
from tame.errors import TameError
from tame.io import load_tensor_file, save_atomic

CHECKPOINT_FORMAT = "tame-train/1"
ATTENTION_FORMAT = "tame-attention/1"
REQUIRED_KEYS = ("attention", "optimizer", "scheduler", "scaler", "epoch", "step", "steps_per_epoch", "rng")


# -- validation ---------------------------------------------------------------------------------------------------
def check_finite(values: Mapping[str, Any], what: str, consequence: str) -> None:
    """Raise a TameError naming the first tensor or number in ``values`` (nested dicts and lists; dotted names)
    that holds NaN or Inf: ``{what}: tensor NAME holds N NaN/Inf values of M; {consequence}``."""
    for name, value in _leaves(values, ""):
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise TameError(f"{what}: tensor {name} holds {bad} NaN/Inf value(s) of {value.numel()}; {consequence}")
        elif isinstance(value, float) and not math.isfinite(value):
            raise TameError(f"{what}: {name} is {value}; {consequence}")


def _leaves(node: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    items = node.items() if isinstance(node, Mapping) else enumerate(node) if isinstance(node, (list, tuple)) else None
    if items is None:
        yield prefix.rstrip("."), node
        return
    for key, value in items:
        yield from _leaves(value, f"{prefix}{key}.")


def check_state_dict(expected: dict, given: dict, what: str) -> None:
    """Raise a TameError naming non-float tensors where the model's are float, missing/unexpected keys and shape
    mismatches."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {tuple(given[k].shape)} vs {tuple(expected[k].shape)}"
        for k in expected
        if k in given and given[k].shape != expected[k].shape
    ]
    kinds = [  # int weights were cast silently (AD 0.00 / IC 100.00): a float tensor must be stored as floats
        f"{k} is {str(given[k].dtype).removeprefix('torch.')}"
        for k in expected
        if k in given and expected[k].is_floating_point() and not _is_float(given[k])
    ]
    problems = []
    if kinds:
        problems.append(
            f"non-float weights {_few(kinds)} (the model's are floating point; a damaged or converted file?)"
        )
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch {_few(shapes)} (file vs model)")
    if problems:
        raise TameError(f"{what} does not fit the model: {'; '.join(problems)}")


def _is_float(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.is_floating_point()


def _few(items: list[str], n: int = 3) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


# -- AM files -----------------------------------------------------------------------------------------------------
def save_attention_file(path: str | Path, state: Mapping[str, torch.Tensor], meta: dict) -> None:
    """Write an AM state dict and what it fits (``meta``) to ``path`` atomically, as CPU tensors."""
    weights = {k: v.detach().cpu() for k, v in state.items()}
    save_atomic({"format": ATTENTION_FORMAT, "attention": weights, "meta": meta}, path)


def read_attention_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(AM state dict, meta) from any supported checkpoint file, loaded without executing code."""
    data = load_tensor_file(path)
    if isinstance(data.get("attention"), dict):  # our format and training checkpoints
        state, meta = data["attention"], dict(data.get("meta") or {})
    elif isinstance(data.get("state_dict"), dict):  # the original TAME snapshots
        state, meta = {k.removeprefix("attn."): v for k, v in data["state_dict"].items() if k.startswith("attn.")}, {}
        if not state:
            raise TameError(f"checkpoint {path}: its state_dict has no 'attn.' keys (not a TAME checkpoint)")
    elif data and all(isinstance(v, torch.Tensor) for v in data.values()):  # a bare AM state dict
        state, meta = data, {}
    else:
        raise TameError(f"checkpoint {path}: not a TAME attention checkpoint (keys: {', '.join(list(data)[:5])})")
    check_finite(
        state, f"checkpoint {path}", "the attention weights are unusable (a diverged run?); use an earlier one"
    )
    return state, meta


# -- training checkpoints -----------------------------------------------------------------------------------------
def save_checkpoint(state: dict, path: Path, *, keep: int) -> None:
    """Write ``state`` to ``path`` atomically, then drop step files beyond the newest ``keep`` in its folder."""
    save_atomic({"format": CHECKPOINT_FORMAT, **state}, path)
    for _, old in step_checkpoints(path.parent)[:-keep]:
        old.unlink(missing_ok=True)


def load_checkpoint(path: Path) -> dict:
    """A training checkpoint, checked for the keys a resume needs and for NaN/Inf in the state it restores
    (TameError if corrupt, incomplete or non-finite)."""
    state = load_tensor_file(path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise TameError(f"{path}: not a tame training checkpoint (missing {', '.join(missing)})")
    resumed = {key: state[key] for key in ("attention", "optimizer", "scheduler", "scaler")}
    check_finite(resumed, str(path), "a run cannot resume from it; use an earlier checkpoint")
    return state


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """This process's torch generator states (CPU, and the current CUDA device's) as uint8 tensors."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    # copies: a rank's row of the stacked [world, n] states is a view at an offset, on which torch.set_rng_state
    # crashes the process (SIGSEGV, torch 2.14)
    torch.set_rng_state(state["torch"].clone())
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].clone(), device)
