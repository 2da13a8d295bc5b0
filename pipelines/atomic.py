"""Atomic outputs: write to a temporary sibling, then rename into place.

A killed process leaves at most a ``.tmp-*`` sibling behind (and, killed between the
two renames of a replacement, the previous output as an ``.old-*`` sibling), never a
half-written output under the final name; :func:`remove_stale_temporaries` clears them
on the next run. ``os.replace``/``rename`` are atomic within a file system,
which is why the temporary path is a sibling of the target.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import InputError, WriteError


def temporary_sibling(target: str | Path, prefix: str = ".tmp") -> Path:
    target = Path(target)
    return target.with_name(f"{prefix}-{target.name}-{uuid.uuid4().hex[:8]}")


def remove_stale_temporaries(target: str | Path) -> int:
    """Remove the ``.tmp-<name>-*`` siblings that a killed run of ``target`` left; returns how many.

    A previous output set aside (``.old-<name>-*``) is put back when ``target`` is missing
    (the run was killed between the two renames of :func:`atomic_path`), else removed.
    Call it only while holding ``target``'s lock: then no live run is writing them.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return 0
    stale = list(target.parent.glob(f".tmp-{target.name}-*"))
    old = sorted(target.parent.glob(f".old-{target.name}-*"), key=lambda p: p.lstat().st_mtime)
    if old and not target.exists() and not target.is_symlink():
        os.replace(old.pop(), target)
    for path in stale + old:
        remove_path(path)
    return len(stale) + len(old)


def remove_path(path: str | Path) -> None:
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(target: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success move it to ``target``.

    The temporary path is removed on any error (an ``OSError``, a full disk say, becomes
    a :class:`~pipelines.errors.WriteError` naming the target) and the previous
    ``target``, if any, is left untouched.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"cannot write {target}: a part of {target.parent} is a file, not a directory") from None
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists; pass --overwrite to replace it")
    tmp = temporary_sibling(target)
    try:
        yield tmp
        if target.exists():
            old = temporary_sibling(target, ".old")
            os.replace(target, old)  # keep the old output until the new one is in place
            os.replace(tmp, target)
            remove_path(old)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        remove_path(tmp)
        reason = exc.strerror or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise WriteError(exc.errno, f"cannot write {target}: {reason}; nothing was changed") from None
    except BaseException:
        remove_path(tmp)
        raise
