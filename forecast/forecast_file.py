"""Reading the forecast file that ``forecast rollout`` writes (layout: :mod:`forecast.rollout.io`).

Verification, plots, export, inspect and the operational run read forecasts through
this module, which needs neither torch nor the rollout engine.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import xarray as xr

from pipelines.errors import InputError

__all__ = ["open_forecast", "is_complete", "partial_path", "TIME_UNITS", "CALENDAR"]

FORECAST_DIMS = ("member", "init_time", "lead_time", "lat", "lon")
TIME_UNITS = "hours since 1970-01-01 00:00:00"
CALENDAR = "proleptic_gregorian"


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


def is_complete(path: str | Path) -> bool:
    """Whether ``path`` is a complete forecast (exists, readable, attribute ``complete`` set)."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        ds = open_forecast(path)
    except InputError:
        return False
    return int(ds.attrs.get("complete", 0)) == 1


def open_forecast(path: str | Path) -> xr.Dataset:
    """Open a forecast written by ``forecast rollout`` (``.zarr``, ``.nc`` or a ``.partial``) lazily.

    Returns a Dataset with dims ``(member, init_time, lead_time, lat, lon)``, ``lead_time``
    as timedelta64 and ``init_time``/``valid_time`` as datetime64.

    Raises
    ------
    InputError
        If ``path`` does not exist or is not a forecast.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"forecast {path} does not exist; create it with `forecast rollout`")
    try:
        if path.is_dir():
            with warnings.catch_warnings():  # a partial output: not consolidated, holds side files
                warnings.simplefilter("ignore", UserWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                ds = xr.open_zarr(path, consolidated=None, decode_timedelta=True)
        else:
            ds = xr.open_dataset(path, engine="netcdf4", chunks={}, decode_timedelta=True)
    except Exception as exc:  # the backends raise many types for a broken file
        raise InputError(f"{path} is not a readable forecast ({type(exc).__name__}: {exc})") from None
    missing = set(FORECAST_DIMS) - set(ds.dims)
    if missing:
        raise InputError(f"{path} is not a forecast: it lacks the dims {', '.join(sorted(missing))}")
    return ds.transpose(*FORECAST_DIMS, ...)   # a .nc stores them in CF order (forecast.rollout.io)
