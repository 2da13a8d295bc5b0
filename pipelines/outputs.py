"""Output paths checked before any work: never an input, never under a file, no dangling link.

Every command calls :func:`check_output` on each output it will write, with the paths it
reads, before it starts anything expensive. Paths are compared after resolving symbolic
links and ``..``, so an input reached through a link is still recognised.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal, Union

from pipelines.errors import InputError

__all__ = ["check_output", "resolve_output"]

PathLike = Union[str, Path]


def resolve_output(out: PathLike, option: str = "--out") -> Path:
    """``out``, with a symbolic link at ``out`` itself resolved to its target.

    Raises
    ------
    InputError
        If ``out`` is a link to nothing (writing through it would create a file somewhere
        else, and a rename onto it would replace the link, not its target).
    """
    out = Path(out)
    if out.is_symlink():
        target = Path(os.path.realpath(out))
        if not target.exists():
            raise InputError(f"{option} {out} is a symbolic link to {os.readlink(out)}, which does not exist; "
                             "remove the link or give the path you mean")
        return target
    return out


def check_output(out: PathLike, inputs: Mapping[str, PathLike | Iterable[PathLike] | None], option: str = "--out",
                 kind: Literal["file", "dir"] = "file") -> Path:
    """Refuse an output that is, contains or lies inside an input, lies under a regular file,
    is of the wrong kind (a directory for a file, or the reverse) or is a dangling link.

    Parameters
    ----------
    out
        The output path.
    inputs
        ``{option or name: path(s)}`` of everything the command reads (None entries are skipped).
    option
        How the user named ``out``, for the message (``--out``, ``NEW``).
    kind
        Whether ``out`` is one file or a directory (a Zarr store, a run directory).

    Returns
    -------
    Path
        ``out`` with a link at ``out`` resolved (:func:`resolve_output`).

    Raises
    ------
    InputError
        One line naming ``out`` and the input or ancestor at fault.
    """
    out = resolve_output(out, option)
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise InputError(f"cannot write {option} {out}: {parent} is a file, not a directory")
    if kind == "file" and out.is_dir():
        raise InputError(f"{option} {out} is a directory; it must be a file")
    if kind == "dir" and out.exists() and not out.is_dir():
        raise InputError(f"{option} {out} is a file; it must be a directory")
    real_out = os.path.realpath(out)
    for name, paths in inputs.items():
        for path in _paths(paths):
            _refuse_overlap(out, real_out, name, path, option)
    return out


def _paths(paths: PathLike | Iterable[PathLike] | None) -> list[PathLike]:
    """The input paths, globs expanded (an input given as ``dir/*.nc``)."""
    if paths is None:
        return []
    items = [paths] if isinstance(paths, (str, Path)) else [p for p in paths if p is not None]
    return [m for item in items for m in (sorted(glob.glob(str(item))) if glob.has_magic(str(item)) else [item])]


def _refuse_overlap(out: Path, real_out: str, name: str, path: PathLike, option: str) -> None:
    real = os.path.realpath(path)
    if real == real_out:
        relation = "is"
    elif real_out.startswith(real.rstrip(os.sep) + os.sep):
        relation = "lies inside"
    elif real.startswith(real_out.rstrip(os.sep) + os.sep):
        relation = "contains"
    else:
        return
    raise InputError(f"{option} {out} {relation} the input {name} {path}; writing it would destroy that input, "
                     "choose another output")
