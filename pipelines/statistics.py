r"""Area-weighted statistics and a smoothed climatology, built lazily for one dask pass.

With the area weights :math:`w_j` of :meth:`Grid.area_weights` (mean 1 over latitudes)
and :math:`\langle x \rangle_t = \frac{1}{n_{lat} n_{lon}} \sum_{jk} w_j x_{tjk}`:

* ``mean`` :math:`\bar x = \frac1T \sum_t \langle x\rangle_t`,
* ``std`` :math:`\sqrt{\frac1T \sum_t \langle x^2\rangle_t - \bar x^2}`,
* ``tendency_std``: the same ``std`` of :math:`x(t + \Delta t) - x(t)` over the pairs of
  consecutive times exactly one time step apart (gaps are skipped),

all in physical units, float64. The climatology is the mean per day of year
(1..366) and hour of day, smoothed over day of year with a circular window of
``smoothing_days`` days (a count-weighted running mean, so unequal sampling does not
bias it); days with no data within the window are left out of the ``dayofyear`` coord.
"""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr

from pipelines.grids import Grid

N_DAYS = 366


def _spatial_mean(x: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    return (x.astype(np.float64) * weights).mean(("lat", "lon"))


def _pooled(x: xr.DataArray, weights: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Lazy area-weighted mean and std over (time, lat, lon)."""
    m1 = _spatial_mean(x, weights).mean("time")
    m2 = _spatial_mean(x.astype(np.float64) ** 2, weights).mean("time")
    return m1, (m2 - m1**2).clip(min=0.0) ** 0.5


def tendency(x: xr.DataArray, step: pd.Timedelta) -> xr.DataArray:
    """``x(t + step) - x(t)`` for consecutive times exactly ``step`` apart, dim ``time`` (of t)."""
    times = pd.DatetimeIndex(x["time"].values)
    ok = np.nonzero(np.diff(times.values) == step.to_timedelta64())[0]
    later = x.isel(time=ok + 1).assign_coords(time=x["time"].values[ok])
    return later - x.isel(time=ok)


def statistics(ds: xr.Dataset, grid: Grid, step: pd.Timedelta) -> xr.Dataset:
    """Lazy ``mean``, ``std``, ``tendency_std`` and ``n_samples`` with dim ``variable``."""
    weights = grid.area_weights().assign_coords(lat=ds["lat"].values)
    names = list(ds.data_vars)
    means, stds, tstds = [], [], []
    for name in names:
        m, s = _pooled(ds[name], weights)
        d = tendency(ds[name], step)
        means.append(m)
        stds.append(s)
        tstds.append(_pooled(d, weights)[1] if d.sizes["time"] else xr.DataArray(np.nan))
    coord = {"variable": ("variable", names)}
    stat = xr.Dataset({
        "mean": xr.concat(means, "variable").assign_coords(coord),
        "std": xr.concat(stds, "variable").assign_coords(coord),
        "tendency_std": xr.concat(tstds, "variable").assign_coords(coord),
    })
    stat["n_samples"] = ("variable", np.full(len(names), ds.sizes["time"], dtype=np.int64))
    stat["n_tendency_samples"] = ("variable", np.full(len(names), tendency(ds[names[0]].isel(lat=0, lon=0), step)
                                                      .sizes["time"], dtype=np.int64))
    units = {n: ds[n].attrs.get("units", "1") for n in names}
    stat["mean"].attrs = {"long_name": "area-weighted mean", "units": "physical units of each variable"}
    stat["std"].attrs = {"long_name": "area-weighted standard deviation"}
    stat["tendency_std"].attrs = {"long_name": f"area-weighted standard deviation of the {step} tendency"}
    stat.attrs["units"] = str(units)
    return stat


def _circular_distance(doy0: np.ndarray, days0: np.ndarray) -> np.ndarray:
    """Days between 0-based days of year, on the 366-day circle, ``(len(days0), len(doy0))``."""
    d = np.abs(days0[:, None] - doy0[None, :])
    return np.minimum(d, N_DAYS - d)


def _block_sum(sub: np.ndarray, near: np.ndarray, hour_index: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """``(B, H, lat, lon)`` = indicator ``(B, H, n)`` . sub ``(n, lat, lon)``, times ``scale (B, H)``.

    The indicator (day ``b`` near time ``k`` and time ``k`` at hour ``h``) is built here from
    ``near (B, n)`` and ``hour_index (n,)``, not sent with the graph: it would be
    ``B * H * n`` floats per block and variable, megabytes for a year of hourly data.
    """
    hours = np.arange(scale.shape[1])
    indicator = (near[:, None, :] & (hour_index[None, None, :] == hours[None, :, None])).astype(np.float64)
    out = np.tensordot(indicator, np.asarray(sub, dtype=np.float64), axes=(2, 0))
    return (out * scale[:, :, None, None]).astype(np.float32)


def climatology(ds: xr.Dataset, smoothing_days: float = 15.0, block_days: int = 8) -> xr.Dataset:
    """Lazy smoothed climatology per variable, dims ``(dayofyear, hour, lat, lon)``, float32.

    Output days are computed in blocks of ``block_days``; a block reads only the time
    steps whose day of year lies within its days +- half the window, so the work and
    the memory per task do not grow with the length of the record.
    """
    times = pd.DatetimeIndex(ds["time"].values)
    doy0 = times.dayofyear.values - 1
    hours = np.unique(times.hour.values)
    h_idx = np.searchsorted(hours, times.hour.values)
    half = max(int(round(smoothing_days)) // 2, 0)
    near = _circular_distance(doy0, np.arange(N_DAYS)) <= half                       # (366, T)
    counts = np.stack([(near & (h_idx == h)[None, :]).sum(axis=1) for h in range(hours.size)], axis=1)
    keep = np.nonzero(counts.sum(axis=1) > 0)[0]
    with np.errstate(divide="ignore"):
        scale = np.where(counts > 0, 1.0 / np.maximum(counts, 1), np.nan)
    blocks = [keep[i:i + block_days] for i in range(0, keep.size, block_days)]
    # per block: the time steps it reads, and which output day each of them is near (the same for every variable)
    reads = [np.nonzero(near[block].any(axis=0))[0] for block in blocks]
    out = {}
    for name, da in ds.data_vars.items():
        arr = da.transpose("time", "lat", "lon").data
        if not isinstance(arr, dsa.Array):
            arr = dsa.from_array(arr, chunks=(1, -1, -1))
        parts = []
        for block, idx in zip(blocks, reads):
            sub = arr[idx].rechunk((idx.size, -1, -1))
            parts.append(dsa.map_blocks(_block_sum, sub, near=near[block][:, idx], hour_index=h_idx[idx],
                                        scale=scale[block], new_axis=[0],
                                        chunks=(block.size, hours.size, *arr.shape[1:]), dtype=np.float32))
        out[name] = xr.DataArray(dsa.concatenate(parts, axis=0), dims=("dayofyear", "hour", "lat", "lon"),
                                 attrs=dict(da.attrs))
    coords = {"dayofyear": ("dayofyear", keep + 1), "hour": ("hour", hours), "lat": ds["lat"], "lon": ds["lon"]}
    result = xr.Dataset(out, coords=coords)
    result.attrs.update({"smoothing_days": float(smoothing_days),
                         "description": "day-of-year x hour-of-day mean, circular running mean over day of year"})
    return result


def climatology_at(clim: xr.Dataset, times: np.ndarray | pd.DatetimeIndex | xr.DataArray) -> xr.Dataset:
    """The climatology at the given valid times: dims ``(time, lat, lon)``.

    The hour is matched to the nearest climatology hour (on the 24 h circle); days of
    year not in the climatology give NaN.
    """
    times = pd.DatetimeIndex(np.asarray(times).ravel())
    hours = np.asarray(clim["hour"].values, dtype=float)
    hour_of = times.hour.values + times.minute.values / 60.0
    dist = np.abs(((hour_of[:, None] - hours[None, :]) + 12.0) % 24.0 - 12.0)
    hour_sel = hours[np.argmin(dist, axis=1)]
    doy = xr.DataArray(times.dayofyear.values, dims="time")
    picked = clim.reindex(dayofyear=np.arange(1, N_DAYS + 1)).sel(dayofyear=doy, hour=xr.DataArray(hour_sel, dims="time"))
    return picked.drop_vars(["dayofyear", "hour"]).assign_coords(time=("time", times))
