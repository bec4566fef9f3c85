"""Safe reading of tensor files (checkpoints and weights are untrusted input) and atomic writing of files.

``.safetensors`` files go through safetensors; everything else through ``torch.load(weights_only=True)``,
which refuses pickles that would construct arbitrary objects (and so never runs a payload).
"""

from __future__ import annotations

import io as pyio
import os
import pickle
import stat
import tempfile
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
    if zipfile.is_zipfile(path):
        _check_zip_records(path)
    _refuse_compressed(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's notes on odd pickles: the error below says it all
            data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise TameError(f"{path}: corrupt or truncated file (UnpicklingError: {str(err)[:120]})") from None
        raise TameError(
            f"{path}: refused to load: the file holds objects other than tensors, which could run code "
            f"({_refusal_reason(err)})"
        ) from None
    except Exception as err:  # damaged bytes can fail anywhere in the unpickler (KeyError, IndexError, ...)
        raise TameError(f"{path}: corrupt or truncated file ({type(err).__name__}: {str(err)[:120]})") from None
    if not isinstance(data, dict):
        raise TameError(f"{path}: expected a dict of tensors, got {type(data).__name__}")
    return data


COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def _refuse_compressed(path: Path) -> None:
    """A compressed tensor file is named as such (torch's unpickler would call it a code-execution risk)."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    for magic, kind in COMPRESSED.items():
        if head.startswith(magic):
            raise TameError(f"{path}: a {kind}-compressed file, not a tensor file; decompress it first")


def _check_zip_records(path: Path) -> None:
    """Verify the CRC-32 of every record of a zip-format torch file, which ``torch.load`` does not: a flipped byte
    in the tensor data would otherwise load as a silently different weight."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as err:  # BadZipFile, OSError, EOFError, zlib.error, ...
        raise TameError(f"{path}: corrupt or truncated file ({type(err).__name__}: {str(err)[:120]})") from None
    if bad is not None:
        raise TameError(f"{path}: corrupt file (checksum mismatch in its record {bad})")


def _refusal_reason(err: pickle.UnpicklingError) -> str:
    """What torch's weights-only unpickler refused (e.g. ``unsupported GLOBAL posix.system``), without the advice
    to load the file with ``weights_only=False``."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    details = [line for line in lines[1:] if not line.startswith(("Check the documentation", "Please file an issue"))]
    return (details or lines or ["unpickling refused"])[0][:160]


def writable_target(path: str | Path) -> Path:
    """The regular file a write to ``path`` replaces: ``path`` itself, or where its symlink points.

    A symlink is written *through* (its target file gets the new content, the link stays), as ``open(path, "w")``
    would; renaming over the link would silently cut it. A path that is (or points to) something other than a
    regular file (a device like ``/dev/full``, a FIFO, a folder, a socket) is refused: renaming a file over it
    would replace a device node or a pipe another program reads.
    """
    path = Path(path)
    if str(path) == "":
        raise TameError("an empty path names no file to write (give a file name)")
    target = path
    if path.is_symlink():
        try:
            target = path.resolve(strict=False)
        except (OSError, RuntimeError) as err:  # a symlink loop
            raise TameError(f"cannot write {path}: it is a symlink that loops or cannot be followed ({err})") from None
        if target.is_symlink():  # still a link after resolving: it loops
            raise TameError(f"cannot write {path}: it is a symlink loop; remove it or give another file")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target
    except OSError as err:  # ELOOP, ENOTDIR, EACCES on the folder: the write fails the same way, say where
        raise TameError(f"cannot write {path}: {err.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, FIFO or socket"
        raise TameError(f"cannot write {path}: it is {kind}, not a regular file; give the name of a file to write")
    return target


def check_writable_folder(folder: str | Path, what: str) -> None:
    """Fail now, not after the work, when ``folder`` (existing, or to be made with its parents) cannot take files:
    the nearest existing folder at or above it must be a folder in which one can be made. Tried for real (a folder
    made and removed at once): ``/proc``, a read-only mount or a file in the path fail only there. ``what`` names
    the setting in the message (``--per-image x.csv``, ``config key output_dir``)."""
    folder = Path(folder)
    above = folder
    while not os.path.lexists(above) and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise TameError(f"{what}: {folder} cannot be made: {above} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".tame-check-", dir=above))
    except OSError as err:
        why = err.strerror or err
        raise TameError(f"{what}: {folder} cannot be made in {above} ({why}); choose a writable folder") from None


@contextmanager
def atomic_path(path: str | Path, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s folder; when the block succeeds it is renamed over ``path``, when it
    fails it is removed, so a reader never sees half a file.

    The temporary name ends in ``path``'s suffix (or ``suffix``), so ``fig.savefig``, ``np.save`` and
    ``Image.save`` pick the format from it. Targets that are not regular files are refused and symlinks written
    through (:func:`writable_target`).
    """
    path = writable_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix if suffix is None else suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:  # named after the file the user asked for, not the temporary one (or none: savefig)
        raise OSError(err.errno, err.strerror or str(err), str(path)) from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) atomically: a temporary file in the same folder, then ``os.replace`` over ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` atomically (see :func:`write_text_atomic`)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` atomically and durably (fsync before the rename): a checkpoint is never half-written.

    The temporary file is ``.NAME.tmpPID`` (no suffix after it), the name the checkpoint folder's clean-up knows.
    """
    with atomic_path(path, suffix="") as tmp, open(tmp, "wb") as handle:
        try:
            torch.save(obj, handle)
            handle.flush()
        except RuntimeError:  # torch's zip writer calls a short write (a file-size limit) "unexpected pos"
            handle.seek(0)
            handle.truncate()
            buffer = pyio.BytesIO()
            torch.save(obj, buffer)
            handle.write(buffer.getbuffer())  # the system's own error (EFBIG, ENOSPC) as an OSError
            handle.flush()
        os.fsync(handle.fileno())


def check_output_paths(sources: Sequence[str | os.PathLike | None], outputs: Sequence[str | os.PathLike]) -> None:
    """Refuse outputs that would overwrite a source (the list a command reads, the checkpoint it exports) or each
    other (two outputs of the same name would silently keep only the last), before anything is written.

    Paths are compared after following symlinks and ``..``, and by inode where both exist (a hard link).
    """
    seen: dict[Path, str] = {}
    for output in outputs:
        resolved = Path(output).expanduser().resolve()
        for source in sources:
            if source is not None and _same_path(Path(source).expanduser(), resolved):
                raise TameError(f"refusing to write {output}: it is the input {source} (choose another file name)")
        if resolved in seen:
            raise TameError(f"two outputs name the same file: {seen[resolved]} and {output}")
        seen[resolved] = str(output)


def _same_path(source: Path, output: Path) -> bool:
    if source.resolve() == output:
        return True
    try:
        return os.path.samefile(source, output)
    except OSError:  # one of them does not exist (yet)
        return False
