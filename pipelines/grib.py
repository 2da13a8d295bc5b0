r"""Read GRIB editions 1 and 2 lazily, through cfgrib and ecCodes (both from wheels).

What the centres ship (ERA5 from MARS and the CDS, the IFS/AIFS open data, NOAA's GFS)
mixes level types in one file: 2 m, 10 m, mean sea level, surface and pressure levels.
xarray's ``open_dataset(engine="cfgrib")`` keeps one level type and skips the rest, so
:func:`open_grib` opens one group per (parameter, level type) and hands the groups to
the ingest (:func:`pipelines.ingest.open_one`), which normalises and merges them as it
merges NetCDF files:

* names are ecCodes' CF short names, those of ERA5 NetCDF: ``t2m``, ``u10``, ``v10``,
  ``msl``, ``tp``, ``z``, ``t`` ... Pressure levels (``isobaricInhPa``) become a ``level``
  dim (hPa), so ``z500`` is requested as from NetCDF. A name that occurs on two level
  types keeps its name on pressure levels and becomes ``<name>_<typeOfLevel>`` (plus the
  level when it is not 0) elsewhere: surface geopotential is ``z_surface``.
* the time of a field is its validity time (``dataDate``/``dataTime`` + the end of its
  step), so an accumulation (``tp``, ``stepType=accum``) is stamped with the end of the
  period it sums over, as in the CDS NetCDF. Every accumulation of a variable must span
  the same period (ERA5: 1 hour); the period is kept in ``cell_methods``.
* regular latitude-longitude (``regular_ll``, either latitude order) and regular Gaussian
  (``regular_gg``: Legendre-Gauss latitudes) grids are read; reduced Gaussian and
  spherical-harmonic fields (ERA5's native MARS form) and other grid types are refused
  with the request that gives a regular grid.
* ensemble members (``number``), two fields for one variable, level and time, and two
  grids in one file are refused, naming the file.

Laziness: ecCodes scans the headers once per file, through cfgrib's indexer; the index
(header values and offset of every message) is cached outside the data
(:mod:`pipelines.grib_index`, which also makes the checks above). Each group's dims and
coordinates come from it, its name and attributes from one message (remembered for the
next file), and its fields are dask arrays decoded by ecCodes when computed
(:mod:`pipelines.grib_fields`).

Raises :class:`~pipelines.errors.InputError` (one line) for a file that is not GRIB, is
truncated, or holds what is listed above.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pipelines.errors import InputError
from pipelines.grib_fields import fields_array, read_coordinates, read_header
from pipelines.grib_index import PROCESSED, check_index, period, scan
from pipelines.variables import CF_ATTRS, canonical

__all__ = ["is_grib", "refuse_mixed", "open_grib", "cf_units", "GRIB_SUFFIXES"]

GRIB_SUFFIXES = frozenset({".grib", ".grib1", ".grib2", ".grb", ".grb1", ".grb2"})
PRESSURE_LEVELS = "isobaricInhPa"
ECCODES_UNITS = {"(0 - 1)": "1", "gpm": "m", "~": "1", "Numeric": "1", "Proportion": "1"}


def is_grib(path: Path) -> bool:
    """Whether ``path`` is a GRIB file: a GRIB suffix, or a file whose first bytes are ``GRIB``."""
    if not path.is_file():
        return False
    if path.suffix.lower() in GRIB_SUFFIXES:
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"GRIB"


def refuse_mixed(paths: list[Path]) -> None:
    """GRIB inputs go alone: a GRIB file beside NetCDF or Zarr is an InputError naming one of each."""
    grib = [p for p in paths if is_grib(p)]
    other = [p for p in paths if not is_grib(p)]
    if grib and other:
        raise InputError(f"inputs mix GRIB ({grib[0]}) with NetCDF/Zarr ({other[0]}); prepare one format at a time "
                         "(append the other with --append)")


def open_grib(path: Path, chunk_bytes: int = 4 * 2**20) -> list[xr.Dataset]:
    """Open ``path`` lazily as one dataset per (parameter, level type), named as NetCDF input.

    Returns
    -------
    list of xarray.Dataset
        Each with one variable (one per height when a level type has several) on dims
        ``valid_time`` (datetime64), ``[level]`` (hPa, pressure levels), ``latitude``,
        ``longitude``, dask chunks of whole fields of at most about ``chunk_bytes``;
        :func:`pipelines.ingest.normalise` takes them on.
    """
    records = scan(path)
    check_index(records)
    lat, lon = read_coordinates(str(path), records[0]["offset"])   # one grid per file (checked)
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["paramId"], record["typeOfLevel"])].append(record)
    parts = [_open_group(path, group, lat, lon, chunk_bytes) for _, group in sorted(groups.items())]
    return _rename_clashes(parts)


def _open_group(path: Path, records: list[dict[str, Any]], lat: np.ndarray, lon: np.ndarray,
                chunk_bytes: int) -> xr.Dataset:
    """The messages of one parameter on one level type as a dataset (see :func:`open_grib`)."""
    first, level_type = records[0], records[0]["typeOfLevel"]
    times = {t: i for i, t in enumerate(sorted({r["valid_time"] for r in records}))}
    levels = {lv: i for i, lv in enumerate(sorted({float(r["level"]) for r in records}))}
    offsets = np.full((len(times), len(levels)), -1, dtype=np.int64)
    for r in records:
        offsets[times[r["valid_time"]], levels[float(r["level"])]] = r["offset"]
    name, attrs = _describe(path, first)
    data = xr.DataArray(fields_array(str(path), offsets, (lat.size, lon.size), chunk_bytes),
                        dims=("valid_time", "level", "latitude", "longitude"),
                        coords={"valid_time": np.array(list(times), dtype="datetime64[s]").astype("datetime64[ns]"),
                                "level": list(levels), "latitude": lat, "longitude": lon}, attrs=attrs)
    if level_type == PRESSURE_LEVELS:
        out = {name: data}
    else:   # one height: no level dim; several: one variable per height
        out = {name if len(levels) == 1 else f"{name}{_suffix(level_type, lv)}": data.isel(level=i, drop=True)
               for i, lv in enumerate(levels)}
    result = xr.Dataset(out)
    result.attrs["grib_suffix"] = "" if level_type == PRESSURE_LEVELS else _suffix(level_type, next(iter(levels)))
    return result


def _suffix(level_type: str, level: float) -> str:
    """``_surface``, ``_heightAboveGround80``: what tells apart a name on several level types."""
    return f"_{level_type}{level:g}" if level else f"_{level_type}"


# (paramId, typeOfLevel, level off pressure levels, stepType, edition, centre) -> (name, attributes): ecCodes' name
# lookups cost milliseconds each (the first of a kind in a process more than 100), and a drop
# directory repeats the same parameters file after file
_DESCRIPTIONS: dict[tuple, tuple[str, dict[str, Any]]] = {}


def _describe(path: Path, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The variable name (ecCodes' CF short name: ``t2m``) and CF attributes of a parameter:
    the project's for a known name, else ecCodes' (``unknown`` left out); the units always the
    message's own (``tp`` is ``m`` from ECMWF, ``kg m-2`` from WMO tables), spelled as UDUNITS
    does (:func:`cf_units`); ``cell_methods`` for a field processed over a period."""
    height = None if record["typeOfLevel"] == PRESSURE_LEVELS else record["level"]   # 10u vs u100: names by height
    key = (record["paramId"], record["typeOfLevel"], height, record["stepType"], record["edition"], record["centre"])
    if key not in _DESCRIPTIONS:
        _DESCRIPTIONS[key] = _look_up(str(path), record)
    name, attrs = _DESCRIPTIONS[key]
    if record["stepType"] in PROCESSED:
        attrs = {**attrs, "cell_methods": f"time: {PROCESSED[record['stepType']]} (interval: "
                                          f"{period(record['stepRange'])})"}
    return name, dict(attrs)


def _look_up(path: str, record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Ask ecCodes only what the project's tables do not say (each kind of key costs a lookup)."""
    header = read_header(path, record["offset"], ("cfVarName", "units"))
    name = str(header["cfVarName"])
    if header["cfVarName"] in (None, "unknown"):
        name = str(read_header(path, record["offset"], ("shortName",))["shortName"])
    attrs = dict(CF_ATTRS.get(canonical(name), {}))
    if not attrs:
        described = read_header(path, record["offset"], ("name", "cfName"))
        attrs = {k: str(described[g]) for k, g in (("long_name", "name"), ("standard_name", "cfName"))
                 if described[g] not in (None, "unknown")}
    if header["units"] not in (None, "unknown"):
        attrs["units"] = cf_units(str(header["units"]))
    attrs.update({"GRIB_paramId": record["paramId"], "GRIB_typeOfLevel": record["typeOfLevel"],
                  "GRIB_stepType": record["stepType"]})
    return name, attrs


def cf_units(units: str) -> str:
    """ecCodes' units as UDUNITS spells them: ``m s**-1`` -> ``m s-1``, ``(0 - 1)`` -> ``1``, ``gpm`` -> ``m``."""
    return ECCODES_UNITS.get(units, units.replace("**", ""))


def _rename_clashes(parts: list[xr.Dataset]) -> list[xr.Dataset]:
    """A name on several level types keeps it on pressure levels; elsewhere it gets the level
    type's suffix (:func:`_suffix`)."""
    counts = Counter(name for part in parts for name in part.data_vars)
    out = []
    for part in parts:
        suffix = part.attrs.pop("grib_suffix")
        out.append(part.rename({n: f"{n}{suffix}" for n in part.data_vars if counts[n] > 1 and suffix}))
    return out
