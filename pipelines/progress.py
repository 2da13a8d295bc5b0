"""Progress bars for long work (tqdm), silenced by ``--quiet`` or ``FORECAST_PROGRESS=0``."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm  # text bars on stderr, also under Jupyter (no ipywidgets needed)

T = TypeVar("T")


def progress_enabled() -> bool:
    return os.environ.get("FORECAST_PROGRESS", "1") != "0"


def progress(iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """Wrap ``iterable`` in a progress bar on stderr when progress is enabled."""
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, disable=not progress_enabled(),
                     dynamic_ncols=True, leave=False))


def progress_bar(total: int, desc: str, unit: str = "it") -> tqdm:
    """A manual progress bar (``bar.update(n)``), disabled when progress is off."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not progress_enabled(), dynamic_ncols=True, leave=False)
