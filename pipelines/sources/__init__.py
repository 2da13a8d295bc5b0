"""Data sources that write ERA5-convention files for ``forecast prepare``.

A source is a :class:`Source`: given the prepare config and a directory, it writes
reanalysis-like NetCDF files there and returns their paths, which ``prepare`` then reads
exactly as it reads real reanalysis. A new source is a new module plus one entry in
:func:`source_for` (and its name in ``PrepareConfig.source``).

* :mod:`pipelines.sources.swe`: the embedded shallow-water generator (torch-harmonics),
  with its physics in :mod:`pipelines.sources.shallow_water`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pipelines.errors import InputError

if TYPE_CHECKING:
    from pipelines.config import PrepareConfig

__all__ = ["Source", "source_for"]


class Source(Protocol):
    """Writes files for ``config`` into ``out_dir`` and returns their paths (idempotent)."""

    def __call__(self, config: PrepareConfig, out_dir: Path) -> list[Path]: ...


def _swe(config: PrepareConfig, out_dir: Path) -> list[Path]:
    from pipelines.sources.swe import generate_swe   # torch-harmonics: imported only when used

    return generate_swe(config.swe, out_dir)


def source_for(name: str) -> Source:
    """The source called ``name`` (``PrepareConfig.source``, other than ``files``)."""
    sources: dict[str, Source] = {"swe": _swe}
    if name not in sources:
        raise InputError(f"unknown source {name!r}; expected files or one of {', '.join(sources)}")
    return sources[name]
