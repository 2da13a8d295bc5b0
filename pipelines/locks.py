"""Exclusive locks on outputs, so that two processes never write the same output.

:func:`hold_lock` takes an ``flock`` on a lock file; the kernel releases it when the
process dies, so a killed run never leaves a stale lock behind. The lock file is
removed on release; a process that waited on a file that was removed meanwhile takes
the lock again on the new file (the inode check), so removal is safe.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import InputError

__all__ = ["LockedError", "hold_lock", "lock_path"]


class LockedError(RuntimeError):
    """Another process holds the lock (the command line exits 1: the input is not wrong)."""


def lock_path(target: str | Path) -> Path:
    """The lock file of ``target``: a sibling ``<name>.lock``."""
    target = Path(target)
    return target.with_name(target.name + ".lock")


@contextlib.contextmanager
def hold_lock(lock_file: str | Path, timeout_s: float, holder: str) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` for the ``with`` block.

    Parameters
    ----------
    lock_file
        The lock file (created, with its directory, if missing; removed on release).
    timeout_s
        Seconds to wait for another holder; 0 refuses at once.
    holder
        The message when the lock is held, e.g. "another `forecast rollout` is writing OUT".

    Raises
    ------
    LockedError
        When the lock is still held after ``timeout_s``.
    InputError
        When ``lock_file`` is a symbolic link (opening it would create or lock its target).
    """
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        handle = _open_lock(lock_file)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            if time.monotonic() >= deadline:
                raise LockedError(f"{holder}; wait for it to finish or raise lock_timeout_s "
                                  f"(now {timeout_s:g} s)") from None
            time.sleep(0.2)
            continue
        if _same_file(handle, lock_file):
            break
        handle.close()  # the previous holder removed the file we locked: lock the new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock_file)
        handle.close()


def _open_lock(lock_file: Path):
    """The lock file opened for appending, created if missing; never through a symbolic link."""
    try:
        fd = os.open(lock_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"lock file {lock_file} is a symbolic link (to {os.readlink(lock_file)}); a lock is "
                             "never a link: remove it and run again") from None
        raise
    return os.fdopen(fd, "a")


def _same_file(handle, path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False
