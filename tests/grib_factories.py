"""Small GRIB files written with ecCodes: the twins of :func:`factories.write_era5_like`'s NetCDF.

``write_grib`` writes the very values of :func:`factories.make_era5_like` as one GRIB
message per variable, level and time, several level types in one file as the CDS and
MARS deliver a multi-variable request (2 m, 10 m, mean sea level, surface, pressure
levels). ``tp`` is an ERA5-style accumulation: each message comes from the forecast
started at the last 06 or 18 UTC before its time, over the ``accumulation_hours`` that
end at that time. Equiangular grids become ``regular_ll``, Legendre-Gauss grids
``regular_gg``; ``lat_order="ascending"`` writes south to north (``jScansPositively=1``).

Simple packing with ``bits`` bits per value: a decoded value is within
:func:`packing_tolerance` of the written one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import eccodes
import numpy as np
import pandas as pd

from factories import make_era5_like
from pipelines.grids import Grid

# our name -> (ecCodes paramId, typeOfLevel, level); pressure variables get their levels
CODES = {"t2m": (167, "heightAboveGround", 2), "u10": (165, "heightAboveGround", 10),
         "v10": (166, "heightAboveGround", 10), "msl": (151, "meanSea", 0), "tp": (228, "surface", 0),
         "lsm": (172, "surface", 0), "z": (129, "isobaricInhPa", None), "t": (130, "isobaricInhPa", None),
         "u": (131, "isobaricInhPa", None), "v": (132, "isobaricInhPa", None), "q": (133, "isobaricInhPa", None),
         "gh": (156, "isobaricInhPa", None), "vo": (138, "isobaricInhPa", None)}


def packing_tolerance(values: np.ndarray, bits: int) -> float:
    """The largest error of simple packing with ``bits`` bits over ``values``: one packing step,
    at most ``(max - min) / (2**bits - 1)`` (the binary scale rounds the step up to a power of 2)."""
    return float(np.ptp(values)) / (2**bits - 1)


def _grid_message(grid: Grid, edition: int, lat_order: str) -> int:
    gaussian = grid.kind == "legendre-gauss"
    handle = eccodes.codes_grib_new_from_samples(f"regular_{'gg' if gaussian else 'll'}_sfc_grib{edition}")
    lat = grid.lat if lat_order == "descending" else grid.lat[::-1]
    keys: dict[str, float | int] = {"Ni": grid.nlon, "Nj": grid.nlat, "latitudeOfFirstGridPointInDegrees": lat[0],
                                    "latitudeOfLastGridPointInDegrees": lat[-1],
                                    "longitudeOfFirstGridPointInDegrees": 0.0,
                                    "longitudeOfLastGridPointInDegrees": grid.lon[-1],
                                    "iDirectionIncrementInDegrees": 360.0 / grid.nlon,
                                    "jScansPositively": int(lat_order == "ascending")}
    if gaussian:
        keys["N"] = grid.nlat // 2
    else:
        keys["jDirectionIncrementInDegrees"] = 180.0 / (grid.nlat - 1)
    for key, value in keys.items():
        eccodes.codes_set(handle, key, float(value) if isinstance(value, np.floating) else value)
    return handle


def _set_time(handle: int, name: str, valid: pd.Timestamp, accumulation_hours: int) -> None:
    if name != "tp":
        reference, keys = valid, {"step": 0}
    else:   # ERA5: forecasts from 06 and 18 UTC, accumulated over the hours that end at `valid`
        reference = (valid - pd.Timedelta(hours=1)).floor("12h") + pd.Timedelta(hours=6)
        reference -= pd.Timedelta(hours=12) * int(reference >= valid)
        end = int((valid - reference) / pd.Timedelta(hours=1))
        keys = {"stepType": "accum", "stepRange": f"{end - accumulation_hours}-{end}"}
    eccodes.codes_set(handle, "dataDate", int(reference.strftime("%Y%m%d")))
    eccodes.codes_set(handle, "dataTime", int(reference.strftime("%H%M")))
    for key, value in keys.items():
        eccodes.codes_set(handle, key, value)


def write_grib(path: str | Path, grid: Grid | str, times: Sequence | pd.DatetimeIndex, variables: Sequence[str],
               edition: int = 2, lat_order: str = "descending", levels: Sequence[float] = (500, 850), bits: int = 16,
               accumulation_hours: int = 1, codes: dict[str, tuple[int, str, int | None]] | None = None) -> Path:
    """Write ``variables`` at ``times`` (values of :func:`factories.make_era5_like`) as one GRIB file.

    ``codes`` overrides entries of :data:`CODES` (``{"z": (129, "surface", 0)}``: orography).
    """
    codes = {**CODES, **(codes or {})}
    grid, times, path = Grid.parse(grid), pd.DatetimeIndex(times), Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make_era5_like(grid, times, variables, levels=levels)
    template = _grid_message(grid, edition, lat_order)
    with open(path, "wb") as out:
        for i, valid in enumerate(times):
            for name in variables:
                param, level_type, level = codes[name]
                for lv in (levels if level is None else [level]):
                    field = data[name].isel(time=i)
                    if "level" in field.dims:   # a pressure variable put on another level type takes its first level
                        field = field.sel(level=lv) if level is None else field.isel(level=0)
                    values = np.asarray(field.values, dtype=np.float64)
                    handle = eccodes.codes_clone(template)
                    for key, value in (("paramId", param), ("typeOfLevel", level_type), ("level", int(lv))):
                        eccodes.codes_set(handle, key, value)
                    _set_time(handle, name, valid, accumulation_hours)
                    eccodes.codes_set(handle, "bitsPerValue", bits)
                    eccodes.codes_set_values(handle, (values if lat_order == "descending" else values[::-1]).ravel())
                    eccodes.codes_write(handle, out)
                    eccodes.codes_release(handle)
    eccodes.codes_release(template)
    return path
