"""One background thread that writes a rollout's lead times while the model steps on."""

from __future__ import annotations

import logging
from concurrent.futures import CancelledError
from typing import Any

__all__ = ["BackgroundWriter"]

log = logging.getLogger(__name__)


class BackgroundWriter:
    """Runs write jobs in order on one thread, at most ``max_pending`` queued (memory stays flat).

    The model steps on while the previous lead time is written. Leaving the ``with`` block
    waits for every queued job, also when an error stops the run, so the lead times
    produced before the error are kept; a failed job re-raises its error.
    """

    def __init__(self, max_pending: int = 2):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forecast-writer")
        self._pending: deque = deque()
        self.max_pending = max_pending

    def submit(self, fn, *args: Any) -> None:
        while len(self._pending) >= self.max_pending:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is not None:  # after an error, queued jobs would only fail in its wake
                for future in self._pending:
                    future.cancel()
            self.drain()
        except CancelledError:
            pass
        except Exception as second:
            if exc_type is None:
                raise
            # keep the first error; the second is often its consequence (a full disk twice)
            log.debug("writing the output also failed: %s: %s", type(second).__name__, second)
        finally:
            self._pool.shutdown(wait=True)
