"""Initial conditions: analyses on the model grid, from a training store or ERA5-convention files.

:func:`open_initial` accepts

* a training store written by ``forecast prepare`` (:func:`pipelines.store.open_store`);
* any ERA5-convention dataset (NetCDF files, globs, a comma-separated list of them, or a
  Zarr store such as the analysis-ready ERA5), opened and normalised by
  :func:`pipelines.ingest.open_inputs`; variables are found by
  :func:`pipelines.variables.select_variable` (``z500`` is level 500 of ``z``).

When the source grid differs from the model grid the fields are regridded on the fly with
:func:`pipelines.regrid.regrid` (``method`` ``None`` refuses instead). Everything stays
lazy: only the fields of the requested times are read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["InitialConditions", "open_initial"]


@dataclass
class InitialConditions:
    """Analyses ``(time, lat, lon)`` per variable, on the model grid, physical units (lazy).

    ``data`` holds exactly ``variables`` in the model's order.
    """

    data: xr.Dataset
    variables: list[str]
    grid: Grid
    source: str
    source_grid: Grid

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.data["time"].values)

    def has(self, time: pd.Timestamp) -> bool:
        return pd.Timestamp(time) in self.times

    def check_times(self, times: list[pd.Timestamp]) -> None:
        """Refuse init times the source does not hold, naming them and the available range."""
        missing = [str(t) for t in times if not self.has(t)]
        if missing:
            span = f"{self.times[0]} to {self.times[-1]}" if len(self.times) else "no times"
            raise InputError(f"init time(s) {', '.join(missing)} are not in the initial conditions {self.source} "
                             f"(it holds {len(self.times)} times, {span})")

    def fields(self, time: pd.Timestamp) -> np.ndarray:
        """The analysis at ``time``: ``(C, H, W)`` float32, physical units.

        Raises
        ------
        InputError
            If a variable holds NaN or infinite values at ``time`` (the model would only
            step them on: bad input, not a blow-up).
        """
        snap = self.data.sel(time=pd.Timestamp(time)).compute()
        fields = np.stack([np.asarray(snap[v].transpose("lat", "lon").values, dtype=np.float32)
                           for v in self.variables])
        bad = [v for v, field in zip(self.variables, fields) if not np.isfinite(field).all()]
        if bad:
            raise InputError(f"the initial conditions {self.source} hold NaN or infinite values in variable(s) "
                             f"{', '.join(map(repr, bad))} at {pd.Timestamp(time).isoformat()}; fill them (forecast "
                             "prepare --fill nearest) or choose another init time")
        return fields

    def variable_attrs(self) -> dict[str, dict[str, Any]]:
        return {v: dict(self.data[v].attrs) for v in self.variables}


def open_initial(source: str, grid: Grid, variables: list[str], method: str | None = "conservative") -> InitialConditions:
    """Open ``source`` lazily and return the ``variables`` on ``grid``.

    Parameters
    ----------
    source
        A training store, or ERA5-convention files (paths, globs, comma-separated).
    grid, variables
        The model's grid and variables (in order).
    method
        Regridding method when the source is on another grid; ``None`` refuses.

    Raises
    ------
    InputError
        If the source is missing or unreadable, lacks a variable, or is on another grid
        and ``method`` is ``None``.
    """
    if _is_training_store(Path(source)):
        from pipelines.store import open_store

        store = open_store(source)
        data, source_grid = store.data, store.grid
        missing = [v for v in variables if v not in data.data_vars]
        if missing:
            raise InputError(f"the checkpoint needs variable(s) {', '.join(missing)}, but the initial conditions "
                             f"{source} hold {', '.join(map(str, data.data_vars))}")
        data = data[variables]
    else:
        from pipelines.ingest import open_inputs
        from pipelines.variables import select_variable

        ds, _, source_grid = open_inputs([s.strip() for s in source.split(",") if s.strip()])
        data = xr.Dataset({v: select_variable(ds, v) for v in variables})
    data = _to_grid(data, source_grid, grid, method, source)
    return InitialConditions(data=data, variables=list(variables), grid=grid, source=source, source_grid=source_grid)


def _to_grid(data: xr.Dataset, source_grid: Grid, grid: Grid, method: str | None, source: str) -> xr.Dataset:
    if source_grid == grid:
        return data
    if method is None:
        raise InputError(f"the initial conditions {source} are on grid {source_grid}, but the checkpoint was "
                         f"trained on grid {grid}; set regrid_method to regrid them on the fly")
    from pipelines.regrid import regrid

    out = regrid(data, grid, method=method, source=source_grid)
    for name in data.data_vars:
        out[name].attrs = dict(data[name].attrs)
    return out


def _is_training_store(path: Path) -> bool:
    """A Zarr directory with the ``grid`` and ``variables`` attributes of :func:`pipelines.store.write_store`."""
    if not path.is_dir():
        return False
    try:
        import zarr

        attrs = zarr.open_group(str(path), mode="r").attrs
    except Exception:  # not a Zarr store at all: the ingest path reports it
        return False
    return "grid" in attrs and "variables" in attrs
