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

Laziness: ecCodes scans the headers once per file; the scan (cfgrib's index) is pickled
into the cache directory (:func:`index_directory`), never beside the data, and written
atomically, so a read-only data directory works and a later run of the same file skips
the scan. The fields are read message by message when dask computes them (one time step
per chunk before the ingest rechunks).

Raises :class:`~pipelines.errors.InputError` (one line) for a file that is not GRIB, is
truncated, or holds what is listed above.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from pipelines.atomic import temporary_sibling
from pipelines.errors import InputError
from pipelines.variables import CF_ATTRS, canonical

log = logging.getLogger(__name__)

GRIB_SUFFIXES = frozenset({".grib", ".grib1", ".grib2", ".grb", ".grb1", ".grb2"})
PRESSURE_LEVELS = "isobaricInhPa"
TIME_DIMS = ("valid_time",)
EXTRA_COORDS = {"stepRange": "valid_time"}     # puts stepRange in the index: accumulation periods
SUPPORTED_GRIDS = ("regular_ll", "regular_gg")
# stepType of a field processed over a period -> its CF cell method
PROCESSED = {"accum": "sum", "avg": "mean", "max": "maximum", "min": "minimum"}
# what to ask MARS or the CDS for instead of a grid type the pipeline does not read
GRID_ADVICE = {
    "reduced_gg": "reduced Gaussian (ERA5's native MARS grid); request grid=0.25/0.25 (regular latitude-longitude) "
                  "or grid=F320 (regular Gaussian) instead",
    "sh": "spherical-harmonic coefficients (ERA5's native MARS form of upper-air fields); request grid=0.25/0.25 "
          "(regular latitude-longitude) instead",
}
INDEX_MAX_AGE_DAYS = 30
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


# -- the index (one header scan per file, cached outside the data directory) ---------------
def index_directory() -> Path:
    """Where the pickled GRIB indexes go: ``$XDG_CACHE_HOME/sphere-forecast/grib-index``
    (``~/.cache/...``), or the temporary directory when that cannot be written."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for directory in (base / "sphere-forecast" / "grib-index",
                      Path(tempfile.gettempdir()) / f"sphere-forecast-grib-index-{os.getuid()}"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(directory, os.W_OK):
            return directory
    raise InputError(f"no writable cache directory for GRIB indexes (tried {base} and {tempfile.gettempdir()}); "
                     "set XDG_CACHE_HOME to a writable directory")


def index_path(path: Path) -> Path:
    """The index of ``path`` in :func:`index_directory`, named after its path, size and mtime
    (a changed file gets a new index; entries unused for 30 days are removed)."""
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    return index_directory() / f"{key}.idx"


def _prune(directory: Path) -> None:
    cutoff = time.time() - INDEX_MAX_AGE_DAYS * 86400
    for old in directory.glob("*.idx"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass


def file_index(path: Path) -> tuple[Any, Path]:
    """cfgrib's index of ``path`` (header values of every message) and where it is cached.

    Built once and written atomically (cfgrib would write it in place, leaving a broken
    file behind when killed); cfgrib's own opens of the file then read it.
    """
    from cfgrib import cfmessage, dataset, messages

    stream = messages.FileStream(str(path), errors="raise")
    keys = dataset.compute_index_keys(TIME_DIMS, EXTRA_COORDS)
    cached = index_path(path)
    try:
        index = messages.FileIndex.from_indexpath(str(cached))
        if index.index_keys == keys and index.fieldset == stream:
            os.utime(cached)   # recently used: kept by the pruning
            return index, cached
    except Exception:  # noqa: BLE001 - missing, unreadable or from another cfgrib: rebuilt below
        pass
    index = messages.FileIndex.from_fieldset(stream, keys, cfmessage.COMPUTED_KEYS)
    tmp = temporary_sibling(cached)
    try:
        with open(tmp, "wb") as f:
            pickle.dump(index, f)
        os.replace(tmp, cached)
    except OSError as exc:   # a full cache costs a rescan next time, nothing else
        log.warning("cannot cache the GRIB index of %s in %s: %s", path, cached.parent, exc.strerror)
        tmp.unlink(missing_ok=True)
    _prune(cached.parent)
    return index, cached


# -- checks on the index (no data read) ----------------------------------------------------
def param_name(param: int) -> str:
    """``"2t (paramId 167)"``: ecCodes' short name of a parameter, for messages."""
    import eccodes

    handle = eccodes.codes_grib_new_from_samples("GRIB2")
    try:
        eccodes.codes_set(handle, "paramId", int(param))
        return f"{eccodes.codes_get(handle, 'shortName')} (paramId {param})"
    except Exception:  # noqa: BLE001 - a parameter ecCodes does not know by number alone
        return f"paramId {param}"
    finally:
        eccodes.codes_release(handle)


def _records(index: Any) -> list[dict[str, Any]]:
    """One dict of header values per message (``index.index_keys`` -> value)."""
    keys = [k.partition(":")[0] for k in index.index_keys]
    return [dict(zip(keys, values)) for values, ids in index.iter_index() for _ in ids]


def check_index(path: Path, records: list[dict[str, Any]]) -> None:
    """Refuse unsupported grids, two grids, ensembles, duplicate fields and mixed accumulations."""
    grids: dict[tuple, set] = defaultdict(set)
    for r in records:
        grids[(r["gridType"], r["numberOfPoints"], r["md5GridSection"])].add(r["paramId"])
    for grid_type, _, _ in grids:
        if grid_type not in SUPPORTED_GRIDS:
            advice = GRID_ADVICE.get(grid_type, "not a global regular grid; request grid=0.25/0.25 (regular "
                                                "latitude-longitude) instead")
            raise InputError(f"gridType {grid_type}: {advice}")
    if len(grids) > 1:
        described = "; ".join(f"{g} with {n} points: {', '.join(map(param_name, sorted(p)))}"
                              for (g, n, _), p in grids.items())
        raise InputError(f"holds fields on {len(grids)} grids ({described}); request one grid (e.g. grid=0.25/0.25) "
                         "or split the file by grid")
    members = sorted({r["number"] for r in records} - {"undef"})
    if len(members) > 1:
        raise InputError(f"holds {len(members)} ensemble members (number {members[0]}..{members[-1]}); prepare reads "
                         "analyses: keep one member, e.g. grib_copy -w number=0")
    fields = Counter((r["paramId"], r["typeOfLevel"], r["level"], r["valid_time"]) for r in records)
    for (param, level_type, level, valid), count in fields.items():
        if count > 1:
            when = np.datetime64(int(valid), "s")
            raise InputError(f"{param_name(param)} on {level_type} {level:g} valid at {when} appears {count} times "
                             "(analysis and forecast, or two steps?); keep one field per variable, level and time")
    _check_accumulations(records)


def _period(step_range: str) -> str:
    """``"5-6"`` -> ``"1 hours"``: the length of a GRIB step range (in the message's step units, hours)."""
    start, _, end = str(step_range).partition("-")
    try:
        return f"{float(end) - float(start):g} hours" if end else "0 hours"
    except ValueError:
        return str(step_range)


def _check_accumulations(records: list[dict[str, Any]]) -> None:
    periods: dict[tuple[int, str], set[str]] = defaultdict(set)
    for r in records:
        if r["stepType"] not in PROCESSED:
            continue
        if _period(r["stepRange"]) == "0 hours":
            raise InputError(f"{param_name(r['paramId'])} valid at {np.datetime64(int(r['valid_time']), 's')} spans "
                             f"no time (stepRange {r['stepRange']}: step 0 of a forecast holds nothing); take it from "
                             "a later step or leave the variable out")
        periods[(r["paramId"], r["stepType"])].add(_period(r["stepRange"]))
    for (param, step_type), found in periods.items():
        if len(found) > 1:
            raise InputError(f"{param_name(param)} (stepType {step_type}) spans different periods "
                             f"({', '.join(sorted(found))}); request one period (ERA5: 1 hour; GFS: keep either "
                             "the 3-hour or the 6-hour buckets)")


# -- opening ---------------------------------------------------------------------------------
def open_grib(path: Path) -> list[xr.Dataset]:
    """Open ``path`` lazily as one dataset per (parameter, level type), named as NetCDF input.

    Returns
    -------
    list of xarray.Dataset
        Each with one variable (more for several heights of one level type) on dims
        ``valid_time`` (datetime64), ``[isobaricInhPa]`` (hPa), ``latitude``, ``longitude``,
        one time step per dask chunk; :func:`pipelines.ingest.normalise` takes them on.
    """
    if not path.is_file() or path.stat().st_size == 0:
        raise InputError("is empty or not a file; expected a GRIB file")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if b"GRIB" not in head:
        raise InputError(f"is not a GRIB file (no 'GRIB' in its first {len(head)} bytes: starts with {head[:8]!r})")
    try:
        index, cached = file_index(path)
    except EOFError:
        raise InputError("is not a GRIB file (ecCodes found no valid message)") from None
    except Exception as exc:  # ecCodes raises its own types for a truncated or corrupt message
        raise InputError(f"is truncated or corrupt ({type(exc).__name__}: {_first_line(exc)})") from None
    records = _records(index)
    check_index(path, records)
    groups = sorted({(r["paramId"], r["typeOfLevel"]) for r in records})
    parts = [_open_group(path, cached, param, level_type) for param, level_type in groups]
    return _rename_clashes(parts)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _open_group(path: Path, cached: Path, param: int, level_type: str) -> xr.Dataset:
    try:
        ds = xr.open_dataset(str(path), engine="cfgrib", chunks=None, decode_timedelta=True,
                             indexpath=str(cached).replace("{", "{{").replace("}", "}}"), errors="raise",
                             filter_by_keys={"paramId": param, "typeOfLevel": level_type}, time_dims=TIME_DIMS,
                             extra_coords=EXTRA_COORDS)
    except Exception as exc:  # cfgrib's DatasetBuildError names the key with several values
        raise InputError(f"{param_name(param)} on {level_type}: cannot build a field ({_first_line(exc)})") from None
    out = {}
    for name, da in ds.data_vars.items():
        for one_level in _split_heights(da, level_type):
            out[str(one_level.name)] = _with_attrs(_as_time_series(one_level), str(name))
    result = xr.Dataset(out)
    level = ds[level_type].values if level_type in ds.coords and ds[level_type].ndim == 0 else 0
    result.attrs["grib_suffix"] = "" if level_type == PRESSURE_LEVELS else _suffix(level_type, float(level))
    return result


def _suffix(level_type: str, level: float) -> str:
    """``_surface``, ``_heightAboveGround80``: what tells apart a name on several level types."""
    return f"_{level_type}{level:g}" if level else f"_{level_type}"


def _split_heights(da: xr.DataArray, level_type: str) -> list[xr.DataArray]:
    """Pressure levels stay a dim; several heights of another level type become one variable each."""
    if level_type == PRESSURE_LEVELS or level_type not in da.dims:
        return [da]
    return [da.sel({level_type: lv}).rename(f"{da.name}{_suffix(level_type, float(lv))}")
            for lv in da[level_type].values]


def _as_time_series(da: xr.DataArray) -> xr.DataArray:
    """Dims ``valid_time`` (a length-1 dim when the file holds one time) and, on pressure levels,
    ``isobaricInhPa``; one time step per dask chunk; no coordinates but the dims'."""
    period = _period(str(np.ravel(da["stepRange"].values)[0])) if "stepRange" in da.coords else "0 hours"
    da = da.drop_vars([c for c in da.coords if c not in ("valid_time", "latitude", "longitude", PRESSURE_LEVELS)])
    da = da.chunk({d: 1 if d == "valid_time" else -1 for d in da.dims})
    for dim in ("valid_time", PRESSURE_LEVELS):
        if dim in da.coords and dim not in da.dims:
            da = da.expand_dims(dim)
    if da.attrs.get("GRIB_stepType") in PROCESSED:
        da.attrs["cell_methods"] = f"time: {PROCESSED[da.attrs['GRIB_stepType']]} (interval: {period})"
    return da


def _with_attrs(da: xr.DataArray, name: str) -> xr.DataArray:
    """CF attributes: the project's names for a known variable, else ecCodes' (without cfgrib's
    ``unknown``); the units always the message's own (``tp`` is ``m`` from ECMWF, ``kg m-2`` from
    WMO tables), spelled as UDUNITS does (:func:`cf_units`)."""
    grib = {k: v for k, v in da.attrs.items() if k in ("units", "long_name", "standard_name") and v != "unknown"}
    keep = {k: v for k, v in da.attrs.items() if k in ("GRIB_paramId", "GRIB_shortName", "GRIB_typeOfLevel",
                                                        "GRIB_stepType", "cell_methods")}
    attrs = {**grib, **CF_ATTRS.get(canonical(name), {}), **keep}
    if "units" in grib:
        attrs["units"] = cf_units(str(grib["units"]))
    da.attrs = attrs
    return da


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
