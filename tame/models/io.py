"""Safe reading and atomic writing of tensor files: checkpoints and weights are untrusted input.

``.safetensors`` files go through safetensors; everything else through ``torch.load(weights_only=True)``,
which refuses pickles that would construct arbitrary objects (and so never runs a payload).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from tame.errors import TameError


def load_tensor_file(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a ``.pth``/``.pt``/``.safetensors`` file into a dict without executing code."""
    path = Path(path)
    if not path.is_file():
        raise TameError(f"file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device=str(map_location)))
        except (SafetensorError, OSError) as err:
            raise TameError(f"{path}: not a readable safetensors file ({err})") from None
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unpickling refused"
        raise TameError(
            f"{path}: refused to load: the file holds objects other than tensors, which could run code ({first[:160]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise TameError(f"{path}: corrupt or truncated file ({type(err).__name__}: {str(err)[:120]})") from None
    if not isinstance(data, dict):
        raise TameError(f"{path}: expected a dict of tensors, got {type(data).__name__}")
    return data


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
