"""A tiny truth store (with climatology) and rollout-layout forecasts for the verification
and plot tests: truth plus noise growing with lead time, written to real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.grids import Grid
from pipelines.store import write_store

GRID = Grid("legendre-gauss", 8, 16)
STEP = pd.Timedelta(hours=6)
TIMES = pd.date_range("2020-01-01", periods=16, freq=STEP)
VARIABLES = {"gh": "m", "u": "m s-1"}


def make_truth(grid: Grid = GRID, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    data = xr.Dataset(
        {v: (("time", "lat", "lon"), rng.normal(10.0 * (i + 1), 2.0, (TIMES.size, *grid.shape)).astype("float32"),
             {"units": u}) for i, (v, u) in enumerate(VARIABLES.items())},
        coords={"time": TIMES, **grid.coords()},
        attrs={"grid": str(grid), "variables": list(VARIABLES), "time_step_seconds": STEP.total_seconds()})
    return data


def make_climatology(data: xr.Dataset) -> xr.Dataset:
    hours = np.array([0, 6, 12, 18])
    doy = np.arange(1, 367)
    clim = data.mean("time").expand_dims(dayofyear=doy, hour=hours).copy(deep=True)
    return clim + xr.DataArray(doy / 100.0, dims="dayofyear") + xr.DataArray(hours / 10.0, dims="hour")


def make_store(path: Path, grid: Grid = GRID, climatology: bool = True) -> xr.Dataset:
    data = make_truth(grid)
    stats = xr.Dataset({k: ("variable", np.ones(len(VARIABLES))) for k in ("mean", "std", "tendency_std")},
                       coords={"variable": list(VARIABLES)})
    write_store(path, data, stats, climatology=make_climatology(data) if climatology else None)
    return data


def make_forecast(path: Path, truth: xr.Dataset, members: int, inits: list[int], leads: int, noise: float = 1.0) -> xr.Dataset:
    """Rollout-layout forecast: truth at the valid time + noise growing with lead time."""
    rng = np.random.default_rng(1)
    init_times = TIMES[inits]
    lead_times = pd.timedelta_range(0, periods=leads, freq=STEP)
    valid = init_times.values[:, None] + lead_times.values[None, :]
    ds = xr.Dataset(coords={"member": np.arange(members, dtype="int32"), "init_time": init_times, "lead_time": lead_times,
                            **truth[["lat", "lon"]].coords})
    for v in VARIABLES:
        at_valid = truth[v].reindex(time=valid.ravel()).values.reshape(len(inits), leads, *GRID.shape)
        growth = noise * np.arange(leads)[None, None, :, None, None]
        ds[v] = (("member", "init_time", "lead_time", "lat", "lon"),
                 (at_valid[None] + growth * rng.normal(size=(members, *at_valid.shape))).astype("float32"),
                 {"units": VARIABLES[v], "long_name": v})
    ds = ds.assign_coords(valid_time=(("init_time", "lead_time"), valid))
    ds.attrs = {"grid": str(GRID), "Conventions": "CF-1.8"}
    ds.to_netcdf(path)
    return ds


def make_regridded_forecast(path: Path, truth: xr.Dataset, grid: Grid) -> Path:
    """A 2-member forecast (init times 0 and 4, 3 lead times) that is exactly the truth
    regridded conservatively onto ``grid``: scored against the truth regridded the same way,
    its error is zero."""
    from pipelines.regrid import regrid

    on_grid = regrid(truth, grid, "conservative", source=GRID)
    fc = make_forecast(path.with_name("unused.nc"), truth, members=2, inits=[0, 4], leads=3)
    valid = fc["valid_time"].values
    fields = {v: (("member", "init_time", "lead_time", "lat", "lon"),
                  np.broadcast_to(on_grid[v].reindex(time=valid.ravel()).values.reshape(2, 3, *grid.shape)[None],
                                  (2, 2, 3, *grid.shape)).astype("float32"), {"units": VARIABLES[v]})
              for v in VARIABLES}
    xr.Dataset(fields, coords={"member": [0, 1], "init_time": fc["init_time"].values, "lead_time": fc["lead_time"].values,
                               "valid_time": fc["valid_time"], **grid.coords()}).to_netcdf(path)
    return path

