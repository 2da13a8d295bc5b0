"""Statistics and climatology against direct NumPy computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.grids import Grid
from pipelines.statistics import climatology, climatology_at, statistics

GRID = Grid.parse("legendre-gauss:4x8")


def _data(times: pd.DatetimeIndex, seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((times.size, *GRID.shape)) + 10.0
    return xr.Dataset({"a": (("time", "lat", "lon"), x)}, coords={"time": times, **GRID.coords()}).chunk({"time": 1})


def test_statistics_match_weighted_numpy():
    times = pd.date_range("2020-01-01", periods=9, freq="6h").delete(4)  # one gap
    ds = _data(times)
    stats = statistics(ds, GRID, pd.Timedelta("6h")).compute()
    x = ds["a"].values
    w = np.broadcast_to(GRID.quadrature_weights[None, :, None], x.shape)
    m = np.average(x, weights=w)
    np.testing.assert_allclose(stats["mean"].sel(variable="a"), m, rtol=1e-12)
    np.testing.assert_allclose(stats["std"].sel(variable="a"), np.sqrt(np.average((x - m) ** 2, weights=w)), rtol=1e-10)
    ok = np.nonzero(np.diff(times.values) == np.timedelta64(6, "h"))[0]
    d = x[ok + 1] - x[ok]
    wd = w[: d.shape[0]]
    dm = np.average(d, weights=wd)
    np.testing.assert_allclose(stats["tendency_std"].sel(variable="a"),
                               np.sqrt(np.average((d - dm) ** 2, weights=wd)), rtol=1e-10)
    assert int(stats["n_tendency_samples"].sel(variable="a")) == 6


def test_climatology_is_a_circular_count_weighted_running_mean():
    times = pd.date_range("2019-12-25", "2020-01-06", freq="12h")
    ds = _data(times, seed=1)
    clim = climatology(ds, smoothing_days=5).compute()
    assert clim["a"].dims == ("dayofyear", "hour", "lat", "lon")
    assert list(clim["hour"].values) == [0, 12]
    # day 1 (Jan 1st) at 12 UTC: all samples at 12 UTC within +-2 days on the 366-day circle
    doy = times.dayofyear.values
    dist = np.minimum(np.abs(doy - 1), 366 - np.abs(doy - 1))
    sel = (dist <= 2) & (times.hour == 12)
    np.testing.assert_allclose(clim["a"].sel(dayofyear=1, hour=12), ds["a"].values[sel].mean(0), rtol=1e-6)
    assert 200 not in clim["dayofyear"].values  # days without data in the window are left out
    at = climatology_at(clim, pd.DatetimeIndex(["2020-01-01T13:00", "2020-07-01T00:00"]))
    np.testing.assert_allclose(at["a"].isel(time=0), clim["a"].sel(dayofyear=1, hour=12))
    assert at["a"].isel(time=1).isnull().all()
