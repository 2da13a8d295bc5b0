"""Small synthetic ERA5-like datasets written as real NetCDF files or Zarr stores.

``write_era5_like`` reproduces the conventions the pipeline must accept:

* ``convention="classic"``: dim ``time`` encoded as int32 "hours since 1900-01-01",
  pressure levels on ``level`` (the CDS NetCDF of old);
* ``convention="valid_time"``: dim ``valid_time`` as int64 "seconds since 1970-01-01",
  levels on ``pressure_level``, extra ``number`` and ``expver`` coords (the CDS of 2024+);
* latitude ``descending`` (90 -> -90, ERA5) or ``ascending``; longitude ``0-360`` or
  ``-180-180``.

Fields are smooth analytic functions of (lat, lon, time) plus a little deterministic
noise, with realistic magnitudes, so statistics and regridding are meaningful.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.grids import Grid

PRESSURE_VARIABLES = ("z", "t", "u", "v", "q", "gh", "vo")
LONG_NAMES = {"t2m": "2m_temperature", "msl": "mean_sea_level_pressure", "u10": "10m_u_component_of_wind",
              "v10": "10m_v_component_of_wind", "z": "geopotential", "t": "temperature",
              "u": "u_component_of_wind", "v": "v_component_of_wind", "q": "specific_humidity",
              "lsm": "land_sea_mask", "tp": "total_precipitation"}
_SCALE = {"t2m": (280.0, 20.0, "K"), "msl": (101325.0, 1500.0, "Pa"), "u10": (0.0, 8.0, "m s-1"),
          "v10": (0.0, 6.0, "m s-1"), "z": (50000.0, 3000.0, "m2 s-2"), "t": (250.0, 15.0, "K"),
          "u": (5.0, 15.0, "m s-1"), "v": (0.0, 10.0, "m s-1"), "q": (0.005, 0.003, "kg kg-1"),
          "lsm": (0.3, 0.3, "1"), "tp": (0.001, 0.001, "m"), "gh": (1000.0, 100.0, "m"), "vo": (0.0, 1e-5, "s-1")}


def field(name: str, grid: Grid, times: pd.DatetimeIndex, level: float | None = None, seed: int = 0) -> np.ndarray:
    """A smooth ``(time, nlat, nlon)`` float32 field with realistic magnitude for ``name``."""
    base, amp, _ = _SCALE.get(name, (0.0, 1.0, "1"))
    lat = np.deg2rad(grid.lat)[None, :, None]
    lon = np.deg2rad(grid.lon)[None, None, :]
    hours = ((times - pd.Timestamp("2000-01-01")) / pd.Timedelta(hours=1)).values[:, None, None]
    phase = 2 * np.pi * hours / 24.0
    season = 2 * np.pi * times.dayofyear.values[:, None, None] / 365.25
    k = (sum(map(ord, name)) % 5) + 1 + (0 if level is None else int(level) // 250)
    x = (np.cos(lat) ** 2 + 0.3 * np.sin(lat) * np.cos(season) + 0.2 * np.cos(lat) * np.cos(k * lon - phase)
         + 0.1 * np.sin(2 * lat) * np.sin(lon + 0.1 * hours))
    rng = np.random.default_rng(seed + k)
    x = x + 0.01 * rng.standard_normal(x.shape)
    if level is not None:
        base = base * (1.0 if name not in ("z",) else level / 500.0)
    return (base + amp * x).astype(np.float32)


def make_era5_like(grid: Grid | str, times: Sequence | pd.DatetimeIndex, variables: Sequence[str],
                   convention: str = "classic", lat_order: str = "descending", lon_convention: str = "0-360",
                   levels: Sequence[float] = (250, 500, 850), long_names: bool = False,
                   nans: dict[str, str] | None = None, static: Sequence[str] = ()) -> xr.Dataset:
    """The dataset (in memory, ERA5 conventions) that :func:`write_era5_like` writes."""
    grid = Grid.parse(grid)
    times = pd.DatetimeIndex(times)
    time_dim = "time" if convention == "classic" else "valid_time"
    level_dim = "level" if convention == "classic" else "pressure_level"
    lat = grid.lat if lat_order == "descending" else grid.lat[::-1]
    lon = grid.lon if lon_convention == "0-360" else np.where(grid.lon >= 180, grid.lon - 360, grid.lon)
    lon_order = np.argsort(lon)
    lat_order_idx = np.arange(grid.nlat) if lat_order == "descending" else np.arange(grid.nlat)[::-1]
    data_vars = {}
    for name in variables:
        out_name = LONG_NAMES.get(name, name) if long_names else name
        attrs = {"units": _SCALE.get(name, (0, 0, "1"))[2], "long_name": name}
        if name in PRESSURE_VARIABLES and levels:
            arr = np.stack([field(name, grid, times, lv) for lv in levels], axis=1)
            arr = arr[:, :, lat_order_idx][..., lon_order]
            data_vars[out_name] = ((time_dim, level_dim, "latitude", "longitude"), arr, attrs)
        else:
            arr = field(name, grid, times)[:, lat_order_idx][..., lon_order]
            data_vars[out_name] = ((time_dim, "latitude", "longitude"), arr, attrs)
        if nans and name in nans:
            values = data_vars[out_name][1]
            if nans[name] == "all":
                values[1] = np.nan
            elif nans[name] == "inf":   # a few Infs, as a broken conversion writes them
                values[2, ..., :2, :3] = np.inf
            else:
                values[1, ..., : max(1, grid.nlat // 4), : max(1, grid.nlon // 4)] = np.nan
    for name in static:
        arr = field(name, grid, times[:1])[0][lat_order_idx][:, lon_order]
        data_vars[LONG_NAMES.get(name, name) if long_names else name] = (("latitude", "longitude"), arr,
                                                                          {"units": "1"})
    coords = {time_dim: times, "latitude": ("latitude", lat.astype(np.float64), {"units": "degrees_north"}),
              "longitude": ("longitude", lon[lon_order].astype(np.float64), {"units": "degrees_east"})}
    if any(name in PRESSURE_VARIABLES for name in variables) and levels:
        coords[level_dim] = (level_dim, np.asarray(levels, dtype=np.int32 if convention == "classic" else np.float64),
                             {"units": "millibars" if convention == "classic" else "hPa"})
    ds = xr.Dataset(data_vars, coords=coords)
    if convention != "classic":
        ds = ds.assign_coords(number=0, expver=(time_dim, np.full(times.size, "0001")))
    return ds


def _time_encoding(convention: str) -> dict:
    if convention == "classic":
        return {"units": "hours since 1900-01-01 00:00:00.0", "calendar": "gregorian", "dtype": "int32"}
    return {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian", "dtype": "int64"}


def write_era5_like(directory: str | Path, grid: Grid | str, times: Sequence | pd.DatetimeIndex,
                    variables: Sequence[str], convention: str = "classic", lat_order: str = "descending",
                    lon_convention: str = "0-360", fmt: str = "netcdf", files: int = 1, **kwargs) -> list[Path]:
    """Write an ERA5-like dataset split along time into ``files`` NetCDF files (or Zarr stores).

    Extra keyword arguments go to :func:`make_era5_like` (``levels``, ``long_names``,
    ``nans={"t2m": "part" | "all" | "inf"}``, ``static=["lsm"]``). Returns the paths written.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ds = make_era5_like(grid, times, variables, convention, lat_order, lon_convention, **kwargs)
    time_dim = "time" if convention == "classic" else "valid_time"
    paths = []
    for i, index in enumerate(np.array_split(np.arange(ds.sizes[time_dim]), files)):
        part = ds.isel({time_dim: index})
        encoding = {time_dim: _time_encoding(convention)}
        if fmt == "zarr":
            path = directory / f"era5_{i:03d}.zarr"
            chunks = {time_dim: 1}
            part.chunk(chunks).to_zarr(path, mode="w", encoding=encoding, zarr_format=3, consolidated=True)
        else:
            path = directory / f"era5_{i:03d}.nc"
            part.to_netcdf(path, encoding=encoding)
        paths.append(path)
    return paths
