"""How the ``forecast`` command line reports errors: one ``error: ...`` line and an exit status.

Bad input (:class:`~pipelines.errors.InputError`) exits 2; a lock held by another run, a
file system that refuses a write and any other failure of the run exit 1; ``--debug``
shows the traceback instead.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import typer

from pipelines.errors import InputError, WriteError
from pipelines.locks import LockedError

__all__ = ["handle_errors", "STATE"]

STATE = {"debug": False}   # --debug: re-raise, so that the traceback shows


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn InputError into ``error: ...`` + exit 2, anything else into a one-line exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except (InputError, LockedError, WriteError) as exc:
            if STATE["debug"]:
                raise
            # a lock or a refusing file system is not bad input: the same command succeeds later
            _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, 2 if isinstance(exc, InputError) else 1)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
            if STATE["debug"]:
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            _fail(f"{type(exc).__name__}: {first} (run with --debug for the traceback)", 1)

    return wrapper
