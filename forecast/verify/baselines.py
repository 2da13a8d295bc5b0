"""Reference forecasts laid out like a rollout: persistence and climatology.

Both return a Dataset with dims ``(init_time, lead_time, lat, lon)`` (no ``member``:
they are deterministic) and the coordinate ``valid_time (init_time, lead_time)``, so
they are scored exactly like the model's forecast. Both are lazy on dask inputs.

* **Persistence**: the truth at the initial time, held for every lead time.
* **Climatology**: the climatological mean for the day of year and hour of day of the
  valid time (the store's ``climatology`` group, dims ``(dayofyear, hour, lat, lon)``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.errors import InputError

__all__ = ["valid_times", "persistence", "climatology_forecast", "climatology_at"]


def valid_times(init_times: pd.DatetimeIndex | np.ndarray, lead_times: pd.TimedeltaIndex | np.ndarray) -> xr.DataArray:
    """``valid_time = init_time + lead_time``, dims ``(init_time, lead_time)``, datetime64[ns]."""
    init = xr.DataArray(pd.DatetimeIndex(init_times).values, dims="init_time", name="init_time")
    lead = xr.DataArray(pd.TimedeltaIndex(lead_times).values, dims="lead_time", name="lead_time")
    init, lead = init.assign_coords(init_time=init), lead.assign_coords(lead_time=lead)
    return (init + lead).rename("valid_time")


def persistence(truth: xr.Dataset, init_times: pd.DatetimeIndex | np.ndarray,
                lead_times: pd.TimedeltaIndex | np.ndarray) -> xr.Dataset:
    """The truth at each init time, repeated for every lead time.

    ``truth`` has dims ``(time, lat, lon)``; an init time missing from it gives NaN.
    """
    valid = valid_times(init_times, lead_times)
    start = truth.reindex(time=valid["init_time"].values).rename(time="init_time")
    start = start.drop_vars([c for c in start.coords if c not in start.dims and c not in ("lat", "lon")])
    out = start.expand_dims(lead_time=valid["lead_time"].values, axis=1)
    return out.assign_coords(init_time=valid["init_time"].values, valid_time=valid)


def climatology_at(climatology: xr.Dataset, times: xr.DataArray | pd.DatetimeIndex | np.ndarray) -> xr.Dataset:
    """Look the climatology up at ``times`` (any dims; a 1-d index gets dim ``time``).

    The nearest ``dayofyear`` and ``hour`` of the climatology are used, so a climatology
    with coarser hours (e.g. 0, 6, 12, 18) or without day 366 still answers. Unlike
    :func:`pipelines.statistics.climatology_at` (1-d times, NaN for a day the climatology
    lacks) it takes times of any dims, as the ``(init_time, lead_time)`` valid times are.
    """
    for dim in ("dayofyear", "hour"):
        if dim not in climatology.dims:
            raise InputError(f"climatology has dims {tuple(climatology.dims)}; expected (dayofyear, hour, lat, lon)")
    if not isinstance(times, xr.DataArray):
        times = xr.DataArray(pd.DatetimeIndex(times).values, dims="time")
    times = times.reset_coords(drop=True) if times.coords else times
    flat = pd.DatetimeIndex(np.ravel(times.values))
    doy = xr.DataArray(np.asarray(flat.dayofyear).reshape(times.shape), dims=times.dims)
    hour = xr.DataArray(np.asarray(flat.hour + flat.minute / 60.0).reshape(times.shape), dims=times.dims)
    out = climatology.sel(dayofyear=doy, hour=hour, method="nearest")
    return out.drop_vars(["dayofyear", "hour"], errors="ignore")


def climatology_forecast(climatology: xr.Dataset, init_times: pd.DatetimeIndex | np.ndarray,
                         lead_times: pd.TimedeltaIndex | np.ndarray) -> xr.Dataset:
    """The climatology at every valid time ``init_time + lead_time``."""
    valid = valid_times(init_times, lead_times)
    out = climatology_at(climatology, valid.reset_coords(drop=True).drop_vars(["init_time", "lead_time"]))
    out = out.transpose("init_time", "lead_time", ...)
    return out.assign_coords(init_time=valid["init_time"].values, lead_time=valid["lead_time"].values,
                             valid_time=valid)
