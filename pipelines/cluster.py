"""Where the dask work runs: a LocalCluster sized to the machine, an existing cluster,
or (for tests and small jobs) dask's local schedulers.

``scheduler`` values:

* ``None``: start a :class:`distributed.LocalCluster` (worker processes, one thread
  each, memory split evenly between them), closed on exit;
* ``"tcp://host:port"`` (any address with ``://``): connect to a running scheduler;
* ``"threads"`` or ``"synchronous"``: no ``distributed`` at all (dask's local
  schedulers), for small runs and tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import dask
import psutil

from pipelines.errors import InputError

log = logging.getLogger(__name__)

LOCAL_SCHEDULERS = ("threads", "synchronous")


def default_workers() -> int:
    """One worker per core, but at least 2 GiB of memory per worker."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    by_memory = int(psutil.virtual_memory().total // (2 * 2**30))
    return max(1, min(cores, by_memory))


@contextlib.contextmanager
def get_client(scheduler: str | None = None, n_workers: int | None = None) -> Iterator[object | None]:
    """Context manager yielding a ``distributed.Client`` (or ``None`` for a local scheduler).

    Raises
    ------
    InputError
        If ``scheduler`` is neither an address nor a local scheduler name, or the
        address cannot be reached.
    """
    if scheduler in LOCAL_SCHEDULERS:
        with dask.config.set(scheduler=scheduler):
            yield None
        return
    from distributed import Client, LocalCluster

    if scheduler is None:
        workers = n_workers or default_workers()
        memory = int(psutil.virtual_memory().total * 0.8 / workers)
        log.info("starting a LocalCluster with %d worker process(es), %.1f GiB each", workers, memory / 2**30)
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, memory_limit=memory,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            yield client
        return
    if "://" not in scheduler:
        raise InputError(f"scheduler {scheduler!r} is not an address like tcp://host:8786 nor one of "
                         f"{', '.join(LOCAL_SCHEDULERS)}")
    try:
        client = Client(scheduler, timeout="10s")
    except OSError as exc:
        raise InputError(f"cannot connect to dask scheduler {scheduler} ({exc})") from None
    with client:
        yield client
