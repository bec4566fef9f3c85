"""The configs (``configs/*.yaml``) and reference lists (``datalist/ILSVRC/*.txt``) shipped with tame.

The wheel carries both folders as package data under ``tame/_data/`` (in the checkout, ``tame/_data/configs`` and
``tame/_data/datalist`` are links to the top-level folders), so an installed tame finds them from any folder:

- ``--config NAME`` (``resnet50``, ``resnet50.yaml`` or ``configs/resnet50.yaml``) that is not an existing file is
  the shipped config of that name (:func:`resolve_config`; ``tame configs`` lists them);
- a relative list path in a config (``data.train_list``, ``data.val_list``, ``data.eval_list``) is read relative
  to the working directory; only when no such file exists there and the path names a shipped list
  (``datalist/ILSVRC/Validation_2000.txt``) is the shipped copy read instead (:func:`resolve_list`).
"""

from __future__ import annotations

from pathlib import Path

from tame.errors import TameError

SHIPPED = Path(__file__).resolve().parent.parent / "_data"  # tame/_data: configs/ and datalist/


def shipped_configs() -> dict[str, Path]:
    """The shipped configs by name (the file name without ``.yaml``), sorted."""
    folder = SHIPPED / "configs"
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def resolve_config(path: str | Path) -> Path:
    """``path`` itself when it exists (a folder is refused where it is read); else the shipped config it names;
    else a TameError listing them."""
    given = Path(path)
    if given.exists():
        return given
    named = given.parent in (Path("."), Path("configs")) and given.suffix in ("", ".yaml")
    shipped = shipped_configs()
    if named and given.stem in shipped:
        return shipped[given.stem]
    names = ", ".join(shipped) or "none found"
    raise TameError(f"config file {path}: not found, and not the name of a shipped config ({names})")


def resolve_list(value: str) -> str:
    """A relative list path that does not exist in the working directory but names a shipped list: the shipped
    copy's absolute path; any other value unchanged (a missing file is reported where it is read)."""
    if not value or "$" in value or "~" in value:
        return value
    given = Path(value)
    if given.is_absolute() or given.exists():
        return value
    shipped = SHIPPED / given
    return str(shipped) if given.parts[:1] == ("datalist",) and shipped.is_file() else value


def resolve_lists(data: object) -> None:
    """Apply :func:`resolve_list` to a ``DataConfig``'s ``train_list``, ``val_list`` and ``eval_list`` in place."""
    for key in ("train_list", "val_list", "eval_list"):
        value = getattr(data, key)
        if isinstance(value, str):
            setattr(data, key, resolve_list(value))
