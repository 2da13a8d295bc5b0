"""Atomic outputs: write to a temporary sibling, then rename into place.

A killed process leaves at most a ``.tmp-*`` sibling behind, never a half-written
output under the final name. ``os.replace``/``rename`` are atomic within a file system,
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


def temporary_sibling(target: str | Path) -> Path:
    target = Path(target)
    return target.with_name(f".tmp-{target.name}-{uuid.uuid4().hex[:8]}")


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
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not overwrite:
        raise InputError(f"{target} already exists; pass --overwrite to replace it")
    tmp = temporary_sibling(target)
    try:
        yield tmp
        if target.exists():
            old = temporary_sibling(target)
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
