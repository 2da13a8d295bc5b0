"""``forecast export``: a rollout as files that CDO, NCO and ncview read.

CDO needs the time as the first (record) dimension of every variable and one ensemble
member per file, which the rollout's ``(member, init_time, lead_time, lat, lon)`` layout
is not. :func:`export_cdo` writes one NetCDF4 file per init time and member,
``<stem>_<YYYYMMDDTHHMM>_m<NNN>.nc``::

    dims        time (unlimited; the valid times), lat, lon
    data vars   one per variable, dims (time, lat, lon), float32, the rollout's units,
                long_name and standard_name, coordinates "forecast_period
                forecast_reference_time realization"
    coords      time ("hours since 1970-01-01", axis T), lat/lon (axis Y/X),
                forecast_period(time) (lead time, hours), forecast_reference_time and
                realization (scalars)

so that ``cdo sinfo`` describes a file, ``cdo ensmean <stem>_<init>_m*.nc mean.nc`` averages
the members of an init time, and the IOOS compliance checker (cf:1.8) passes. Every file
is written atomically; a complete export is skipped unless ``overwrite``.

``forecast export --format grib2`` writes GRIB2 instead (:mod:`forecast.export_grib`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.forecast_file import TIME_UNITS, is_complete, open_forecast
from pipelines.atomic import atomic_path
from pipelines.errors import InputError
from pipelines.progress import progress

log = logging.getLogger(__name__)

__all__ = ["export_cdo", "export_name", "open_for_export"]


def export_name(stem: str, init_time: pd.Timestamp, member: int) -> str:
    """``"fc_20200103T0000_m007.nc"``."""
    return f"{stem}_{pd.Timestamp(init_time):%Y%m%dT%H%M}_m{int(member):03d}.nc"


def open_for_export(forecast: str | Path, out_dir: str | Path) -> tuple[xr.Dataset, str, Path]:
    """The complete forecast (lazy), the stem of the exported names and the output directory (created).

    Raises
    ------
    InputError
        If ``forecast`` is not a complete forecast or ``out_dir`` is a file.
    """
    forecast, out_dir = Path(forecast), Path(out_dir)
    ds = open_forecast(forecast)
    if not is_complete(forecast):
        raise InputError(f"{forecast} is not a complete forecast (attribute complete != 1); finish its rollout first")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"export directory {out_dir} is a file")
    out_dir.mkdir(parents=True, exist_ok=True)
    return ds, forecast.name.removesuffix(forecast.suffix), out_dir


def export_cdo(forecast: str | Path, out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Write one CDO-ready NetCDF per init time and member of ``forecast`` into ``out_dir``.

    Raises
    ------
    InputError
        If ``forecast`` is not a complete forecast or ``out_dir`` is a file.
    """
    ds, stem, out_dir = open_for_export(forecast, out_dir)
    paths = []
    pairs = [(i, m) for i in range(ds.sizes["init_time"]) for m in range(ds.sizes["member"])]
    for i, m in progress(pairs, desc="export"):
        one = ds.isel(init_time=i, member=m)
        target = out_dir / export_name(stem, one["init_time"].values, one["member"].values)
        paths.append(target)
        if target.exists() and not overwrite:
            continue
        cdo = cdo_dataset(one, ds.attrs)
        with atomic_path(target) as tmp:
            cdo.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", unlimited_dims=["time"], encoding=_encoding(cdo))
    log.info("exported %d file(s) into %s", len(paths), out_dir)
    return paths


def cdo_dataset(one: xr.Dataset, attrs: dict) -> xr.Dataset:
    """One init time and member ``(lead_time, lat, lon)`` -> the CDO layout (time first)."""
    valid = pd.DatetimeIndex(np.asarray(one["valid_time"].values))
    lead_hours = pd.TimedeltaIndex(one["lead_time"].values) / pd.Timedelta(hours=1)
    aux = "forecast_period forecast_reference_time realization"
    data = {}
    for name, var in one.data_vars.items():
        values = var.transpose("lead_time", "lat", "lon").values.astype(np.float32)
        keep = {k: v for k, v in var.attrs.items() if k in ("units", "long_name", "standard_name")}
        data[name] = (("time", "lat", "lon"), values, {**keep, "coordinates": aux})
    coords = {
        "time": ("time", valid.values, {"standard_name": "time", "long_name": "valid time", "axis": "T"}),
        "lat": ("lat", one["lat"].values, {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"}),
        "lon": ("lon", one["lon"].values, {"standard_name": "longitude", "units": "degrees_east", "axis": "X"}),
        "forecast_period": ("time", lead_hours.values.astype(np.float64),
                            {"standard_name": "forecast_period", "long_name": "lead time", "units": "hours"}),
        "forecast_reference_time": ((), np.datetime64(pd.Timestamp(one["init_time"].values), "ns"),
                                    {"standard_name": "forecast_reference_time", "long_name": "initial time"}),
        "realization": ((), np.int32(one["member"].values),
                        {"standard_name": "realization", "long_name": "ensemble member", "units": "1"}),
    }
    out = xr.Dataset(data, coords=coords)
    kept = ("title", "institution", "source", "history", "grid", "seed", "config_hash")
    out.attrs = {"Conventions": "CF-1.8", **{k: attrs[k] for k in kept if k in attrs},
                 "comment": "one member of one init time of a sphere-forecast rollout, exported for CDO/NCO"}
    return out


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    enc: dict[str, dict] = {name: {"dtype": "float32", "_FillValue": np.float32(np.nan), "zlib": True, "complevel": 1}
                            for name in map(str, ds.data_vars)}
    for name in ("time", "forecast_reference_time"):
        enc[name] = {"units": TIME_UNITS, "calendar": "proleptic_gregorian", "dtype": "float64", "_FillValue": None}
    for name in ("lat", "lon", "forecast_period"):
        enc[name] = {"dtype": "float64", "_FillValue": None}
    enc["realization"] = {"dtype": "int32", "_FillValue": None}
    return enc
