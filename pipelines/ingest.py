"""Ingest reanalysis files lazily and normalise their conventions.

Every source (ERA5 NetCDF from the CDS, one file or many, a Zarr store such as the
analysis-ready cloud ERA5, or GRIB 1/2 files as MARS, the CDS, the IFS open data and GFS
ship them: :mod:`pipelines.grib`) becomes one dask-backed :class:`xarray.Dataset` with

* dims ``time`` (decoded ``datetime64``, sorted, unique), ``lat`` (N -> S), ``lon``
  (0 -> 360) and, for pressure-level variables, ``level`` (hPa);
* nothing loaded but coordinates (chunks of one time step).

ERA5 spellings accepted: ``time``/``valid_time``; ``latitude``/``lat``;
``longitude``/``lon`` in 0..360 or -180..180; ``level``/``pressure_level``; CF-encoded
times (``hours since 1900-01-01`` or ``seconds since 1970-01-01``). Files on different
grids, duplicate or non-monotonic times and unreadable files are
:class:`~pipelines.errors.InputError`\\ s naming the file.
"""

from __future__ import annotations

import glob
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.errors import InputError
from pipelines.grib import is_grib, open_grib, refuse_mixed
from pipelines.grids import Grid, standardise_latlon

log = logging.getLogger(__name__)

TIME_NAMES = ("time", "valid_time")
LEVEL_NAMES = ("level", "pressure_level", "isobaricInhPa", "plev")
LEVEL_DIM = "level"
KEEP_COORDS = ("time", "lat", "lon", LEVEL_DIM)
# Target size of one dask chunk: large enough that per-task overhead (about a millisecond
# on a distributed cluster) is amortised, small enough that memory stays flat.
CHUNK_BYTES = 4 * 2**20


def time_chunk(ds: xr.Dataset, budget_bytes: int = CHUNK_BYTES) -> int:
    """Time steps per dask chunk so that one chunk of the largest variable is at most
    ``budget_bytes`` (at least 1 step, at most the whole record)."""
    per_step = max((int(np.prod([n for d, n in da.sizes.items() if d != "time"])) * da.dtype.itemsize
                    for da in ds.data_vars.values() if "time" in da.dims), default=1)
    return int(max(1, min(ds.sizes.get("time", 1), budget_bytes // max(per_step, 1))))


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Expand globs and directories into a sorted list of NetCDF files, Zarr stores and GRIB files.

    A directory that is not a Zarr store stands for the NetCDF files (``*.nc``, ``*.nc4``),
    Zarr stores and GRIB files (:func:`pipelines.grib.is_grib`) directly inside it; hidden
    files (a delivery still being written under a ``.name``) are left out.

    Raises
    ------
    InputError
        If no input is given, a path/glob matches nothing or a directory holds no data.
    """
    if not inputs:
        raise InputError("no input files given; pass --input PATH (NetCDF or GRIB files, globs or Zarr stores)")
    paths: list[Path] = []
    for item in inputs:
        matches = sorted(glob.glob(str(Path(item).expanduser()))) if glob.has_magic(item) else [item]
        matches = [m for m in matches if Path(m).exists()]
        if not matches:
            raise InputError(f"input {item!r} matches no file or Zarr store")
        for match in map(Path, matches):
            if match.is_dir() and not is_zarr(match):
                inside = sorted(p for p in match.iterdir() if not p.name.startswith(".") and
                                (p.suffix in (".nc", ".nc4") or is_zarr(p) or is_grib(p)))
                if not inside:
                    raise InputError(f"input directory {match} holds no NetCDF file (*.nc), Zarr store or GRIB file")
                paths.extend(inside)
            else:
                paths.append(match)
    return list(dict.fromkeys(paths))


def is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or (path.is_dir() and any((path / f).exists() for f in ("zarr.json", ".zgroup")))


def open_one(path: Path) -> xr.Dataset:
    """Open one NetCDF file, Zarr store or GRIB file lazily and normalise it (see module docstring)."""
    try:
        if is_grib(path):  # one part per parameter and level type, merged as files are; the scan
            ds = _merge([normalise(part) for part in open_grib(path, CHUNK_BYTES)])  # has read every message
        elif is_zarr(path):  # a Zarr store has no single end to probe; its chunks are read by the passes
            ds = normalise(xr.open_zarr(path, chunks={}, consolidated=None))
        else:
            _check_classic_size(path)
            ds = normalise(xr.open_dataset(path, chunks={}, cache=False))
            _probe(ds)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    except Exception as exc:  # netCDF4/HDF5/zarr raise many types for truncated or foreign files
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(f"cannot read {path} (unreadable or truncated: {type(exc).__name__}: {first})") from None
    ds.attrs["source_path"] = str(path)
    return ds


def _check_classic_size(path: Path) -> None:
    """A truncated NetCDF-3 file opens and reads as zeros; map it to find the missing bytes."""
    with open(path, "rb") as f:
        if f.read(3) != b"CDF":
            return
    from scipy.io import netcdf_file

    with netcdf_file(path, "r", mmap=True) as nc:
        for var in nc.variables.values():
            var.data.shape  # noqa: B018 - raises when the file ends before the variable
        nc.close()


def _probe(ds: xr.Dataset) -> None:
    """Read the last value of every variable: a truncated file fails here, named, not mid-run."""
    for var in ds.data_vars.values():
        if var.size:
            var[tuple(-1 for _ in var.dims)].values  # noqa: B018


def normalise(ds: xr.Dataset) -> xr.Dataset:
    """Rename ERA5 dims to ``time``/``lat``/``lon``/``level``, drop extra coords, sort."""
    time_names = [n for n in TIME_NAMES if n in ds.dims]
    if len(time_names) > 1:
        raise InputError(f"has both {' and '.join(time_names)} dims; expected one time dim")
    renames = {time_names[0]: "time"} if time_names and time_names[0] != "time" else {}
    renames.update({n: "level" for n in LEVEL_NAMES if n in ds.dims and n != "level"})
    if renames:
        ds = ds.rename(renames)
    ds = ds.drop_vars([c for c in ds.coords if c not in KEEP_COORDS and c not in ("latitude", "longitude")])
    ds = standardise_latlon(ds)
    if "time" in ds.dims:
        if not np.issubdtype(ds["time"].dtype, np.datetime64):
            raise InputError("time is not a CF-encoded datetime (no 'units: <unit> since <date>' attribute)")
        times = pd.DatetimeIndex(ds["time"].values)
        _check_times(times)
        # whole fields (the regrid's core dims), a bounded number of time steps per task
        ds = ds.chunk({"time": time_chunk(ds), "lat": -1, "lon": -1})
    return ds


def _check_times(times: pd.DatetimeIndex, where: str = "") -> None:
    if times.has_duplicates:
        dup = times[times.duplicated()][0]
        raise InputError(f"duplicate time {dup}{where}; each time must appear once")
    if not times.is_monotonic_increasing:
        bad = int(np.argmax(np.diff(times.values) <= np.timedelta64(0)))
        raise InputError(f"times are not increasing{where} ({times[bad]} is followed by {times[bad + 1]})")


def check_same_grid(datasets: list[xr.Dataset]) -> Grid:
    """The common grid of all inputs, or an InputError naming two files that differ."""
    grids = [(Grid.from_coords(ds), ds.attrs.get("source_path", "?")) for ds in datasets]
    first, first_path = grids[0]
    for grid, path in grids[1:]:
        if grid != first:
            raise InputError(f"input files are on different grids: {first_path} is {first}, {path} is {grid}; "
                             "regrid them to one grid first or prepare them separately")
    return first


def combine(datasets: list[xr.Dataset]) -> xr.Dataset:
    """Concatenate along time the files holding the same variables, then merge the groups.

    Times covered by some variable groups but not others are reported (warning) and left
    out, so every stored time has every variable.
    """
    groups: dict[frozenset, list[xr.Dataset]] = {}
    for ds in datasets:
        groups.setdefault(frozenset(ds.data_vars), []).append(ds)
    parts = []
    for members in groups.values():
        timed = [ds for ds in members if "time" in ds.dims]
        static = [ds for ds in members if "time" not in ds.dims]
        if timed:
            timed.sort(key=lambda d: d["time"].values[0])
            part = xr.concat(timed, dim="time", data_vars="minimal", coords="minimal", compat="override",
                             join="override", combine_attrs="drop_conflicts") if len(timed) > 1 else timed[0]
            paths = ", ".join(d.attrs.get("source_path", "?") for d in timed)
            _check_times(pd.DatetimeIndex(part["time"].values), where=f" across {paths}")
            parts.append(part)
        parts.extend(static)
    return _merge(parts)


def _merge(parts: list[xr.Dataset]) -> xr.Dataset:
    parts = _align_levels(parts)
    longest = max((p.sizes["time"] for p in parts if "time" in p.dims), default=0)
    # a one-time-step file next to longer ones holds static fields (ERA5 lsm, surface z)
    parts = [p.isel(time=0, drop=True) if "time" in p.dims and p.sizes["time"] == 1 < longest else p for p in parts]
    timed = [p for p in parts if "time" in p.dims]
    if len(timed) > 1:
        common = timed[0].indexes["time"]
        for p in timed[1:]:
            common = common.intersection(p.indexes["time"])
        for p in timed:
            missing = p.sizes["time"] - len(common)
            if missing:
                warnings.warn(f"{missing} time(s) of {', '.join(map(str, p.data_vars))} are missing from other "
                              f"input files and are left out", stacklevel=3)
        parts = [p.sel(time=common) if "time" in p.dims else p for p in parts]
    return xr.merge(parts, compat="override", join="override", combine_attrs="drop_conflicts")


def _align_levels(parts: list[xr.Dataset]) -> list[xr.Dataset]:
    """Parts on the most common set of pressure levels keep a ``level`` dim (sorted); a part on
    other levels holds each level as a variable named as it is requested (``t850``), so no level
    is relabelled or padded with NaN when the parts are merged."""
    sets = [tuple(sorted(np.asarray(p[LEVEL_DIM].values, dtype=float))) for p in parts if LEVEL_DIM in p.dims]
    common = pd.Series(sets, dtype=object).mode().iloc[0] if sets else ()
    out = []
    for p in parts:
        if LEVEL_DIM in p.dims:
            p = p.sortby(LEVEL_DIM)
            if tuple(np.asarray(p[LEVEL_DIM].values, dtype=float)) != common:
                p = _levels_as_variables(p)
        out.append(p)
    return out


def _levels_as_variables(ds: xr.Dataset) -> xr.Dataset:
    out = {}
    for name, da in ds.data_vars.items():
        if LEVEL_DIM not in da.dims:
            out[str(name)] = da
            continue
        for level in np.asarray(da[LEVEL_DIM].values, dtype=float):
            one = da.sel({LEVEL_DIM: level}, drop=True)
            one.attrs = {**da.attrs, "long_name": f"{da.attrs.get('long_name', name)} at {level:g} hPa",
                         "pressure_level_hPa": level}
            out[f"{name}{level:g}"] = one
    return xr.Dataset(out, attrs=ds.attrs)


def describe_paths(paths: list[Path], limit: int = 3) -> str:
    """``"a.grib2, b.grib2"`` or ``"a.grib2, b.grib2, c.grib2 and 117 more"``."""
    shown = ", ".join(map(str, paths[:limit]))
    return shown if len(paths) <= limit else f"{shown} and {len(paths) - limit} more"


def open_inputs(inputs: list[str]) -> tuple[xr.Dataset, list[Path], Grid]:
    """Open, check and combine all inputs lazily: ``(dataset, paths, source_grid)``.

    The dataset's attribute ``inputs`` names the files (for messages about what they lack).
    """
    paths = expand_inputs(inputs)
    refuse_mixed(paths)
    datasets = [open_one(p) for p in paths]
    grid = check_same_grid(datasets)
    ds = combine(datasets)
    ds.attrs.pop("source_path", None)
    ds.attrs["inputs"] = describe_paths(paths)
    if "time" not in ds.dims:
        raise InputError("the inputs have no time dimension (expected 'time' or 'valid_time')")
    return ds, paths, grid


# -- time selection ----------------------------------------------------------------------
def infer_time_step(times: pd.DatetimeIndex) -> pd.Timedelta:
    """The most common spacing of ``times``."""
    if len(times) < 2:
        raise InputError(f"need at least 2 time steps to infer a time step, got {len(times)}")
    diffs = pd.Series(np.diff(times.values))
    return pd.Timedelta(diffs.mode().iloc[0])


def describe_gaps(times: pd.DatetimeIndex, step: pd.Timedelta, limit: int = 3) -> list[str]:
    """``["2020-01-02 00:00 -> 2020-01-02 18:00"]``: intervals longer than ``step``."""
    diffs = np.diff(times.values)
    idx = np.nonzero(diffs != step.to_timedelta64())[0]
    return [f"{times[i]} -> {times[i + 1]}" for i in idx]


def select_times(ds: xr.Dataset, start: str | None, end: str | None, time_step: str | None,
                 known_step: pd.Timedelta | None = None) -> tuple[xr.Dataset, pd.Timedelta, list[str]]:
    """Restrict to ``[start, end]`` and, given ``time_step``, to a regular series.

    Target times present in the data are selected; the others are linearly interpolated
    between the two neighbouring source times when these are one source step apart.
    Target times inside a gap of the source are left out and reported (warning and
    the returned list), never dropped silently. With ``known_step`` (an append: the
    store's step) a single time is enough, as one new analysis every six hours is.

    Returns
    -------
    (dataset, time step, gaps)
    """
    ds = ds.sel(time=slice(start, end))
    times = pd.DatetimeIndex(ds["time"].values)
    if len(times) == 1 and known_step is not None:
        return ds, known_step, []
    if len(times) < 2:
        raise InputError(f"only {len(times)} time step(s) between start={start} and end={end}; need at least 2")
    source_step = infer_time_step(times)
    if time_step is None:
        gaps = describe_gaps(times, source_step)
        if gaps:
            warnings.warn(f"irregular times (step {source_step}): {len(gaps)} gap(s), e.g. {'; '.join(gaps[:3])}",
                          stacklevel=2)
        return ds, source_step, gaps
    try:
        step = pd.Timedelta(time_step)
    except ValueError:
        raise InputError(f"cannot parse time step {time_step!r}; expected e.g. 6h, 1h, 1D") from None
    target = pd.date_range(times[0], times[-1], freq=step)
    return _regularise(ds, times, target, source_step, step)


def _regularise(ds: xr.Dataset, times: pd.DatetimeIndex, target: pd.DatetimeIndex, source_step: pd.Timedelta,
                step: pd.Timedelta) -> tuple[xr.Dataset, pd.Timedelta, list[str]]:
    t = times.values.astype("datetime64[ns]").astype(np.int64)
    tt = target.values.astype("datetime64[ns]").astype(np.int64)
    hi = np.clip(np.searchsorted(t, tt, side="left"), 0, len(t) - 1)
    exact = t[hi] == tt
    lo = np.where(exact, hi, hi - 1)
    span = t[hi] - t[lo]
    ok = exact | (span <= source_step.value)
    missing = target[~ok]
    gaps = [str(m) for m in missing]
    if len(missing):
        warnings.warn(f"{len(missing)} of {len(target)} times at step {step} fall in gaps of the input and are "
                      f"left out, e.g. {', '.join(gaps[:3])}", stacklevel=3)
    lo, hi, tt = lo[ok], hi[ok], tt[ok]
    frac = np.where(hi == lo, 0.0, (tt - t[lo]) / np.maximum(t[hi] - t[lo], 1))
    new_time = pd.DatetimeIndex(tt.astype("datetime64[ns]"))
    a = ds.isel(time=xr.DataArray(lo, dims="time")).assign_coords(time=new_time)
    if not np.any(frac > 0):
        return a, step, gaps
    b = ds.isel(time=xr.DataArray(hi, dims="time")).assign_coords(time=new_time)
    w = xr.DataArray(frac, dims="time", coords={"time": new_time})
    out = a + (b - a) * w
    for name in out.data_vars:
        out[name].attrs = ds[name].attrs
    return out.chunk({"time": time_chunk(out)}), step, gaps
