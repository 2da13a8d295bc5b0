"""``forecast prepare``: reanalysis files (or the shallow-water source) -> training store.

Steps (all lazy until the two dask passes):

1. ingest: open every input (NetCDF or Zarr), normalise conventions, check grids and
   times, combine (:mod:`pipelines.ingest`);
2. select the requested variables and levels (:mod:`pipelines.variables`), the time
   range and the optional regular time step;
3. pass 1: regrid (:mod:`pipelines.regrid`) and stream to a temporary store, counting
   NaNs in the same pass (``fill="fail"``: a NaN aborts, nothing is left behind);
4. pass 2: statistics and climatology from the regridded temporary store
   (:mod:`pipelines.statistics`), static fields, metadata;
5. rename the temporary store into place (:func:`pipelines.atomic.atomic_path`).

The store must not exist unless ``overwrite`` (replace it) or ``append`` is given, and
must not be, contain or lie inside an input; both are checked before any work. The run
holds the lock ``<out>.lock`` and first removes the temporaries an earlier, killed run
of the same store left (``.tmp-<name>-*``).

``append=True`` adds new times to an existing store (same grid and variables, no
overlap); the statistics and climatology of the store are kept as they are and the
appended time ranges are recorded in the ``appended`` attribute.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import warnings
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr
import zarr

import pipelines
from pipelines.atomic import atomic_path, remove_stale_temporaries
from pipelines.cluster import get_client
from pipelines.config import PrepareConfig
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.locks import hold_lock, lock_path
from pipelines.outputs import check_output
from pipelines.ingest import expand_inputs, open_inputs, select_times, time_chunk
from pipelines.missing import fill_nearest, nan_counts, nan_report
from pipelines.regrid import regrid
from pipelines.statistics import climatology, statistics
from pipelines.store import consolidate, linked_copy, open_store, write_group
from pipelines.variables import select_variable

log = logging.getLogger(__name__)


def source_inputs(config: PrepareConfig) -> list[str]:
    """The input paths: ``config.inputs``, or the files a generated source writes (:mod:`pipelines.sources`)."""
    if config.source == "files":
        return list(config.inputs)
    from pipelines.sources import source_for

    out_dir = Path(config.sources_dir or f"{config.out}.sources")
    return [str(p) for p in source_for(config.source)(config, out_dir)]


def select(ds: xr.Dataset, names: list[str], static: bool = False) -> xr.Dataset:
    """The requested variables as ``(time, lat, lon)`` (or ``(lat, lon)`` when ``static``)."""
    out = {}
    for name in names:
        da = select_variable(ds, name)
        if static and "time" in da.dims:
            da = da.isel(time=0, drop=True)
        extra = set(da.dims) - {"time", "lat", "lon"}
        if extra:
            raise InputError(f"variable {name!r} has extra dims {sorted(map(str, extra))}; select a level like {name}500")
        out[name] = da.transpose(*[d for d in ("time", "lat", "lon") if d in da.dims])
    return xr.Dataset(out)


def _provenance(config: PrepareConfig, command: str | None, paths: list[Path], source_grid: Grid) -> str:
    return json.dumps({
        "sources": [str(p) for p in paths], "source_grid": str(source_grid), "command": command,
        "config": config.model_dump(mode="json"), "package": "sphere-forecast",
        "package_version": pipelines.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })


def _root_attrs(config: PrepareConfig, command: str | None, paths: list[Path], source_grid: Grid,
                target: Grid, step: pd.Timedelta, gaps: list[str]) -> dict:
    return {
        "grid": str(target), "variables": list(config.variables), "time_step_seconds": step.total_seconds(),
        "static_variables": list(config.static_variables), "source_grid": str(source_grid),
        "regrid_method": config.method, "Conventions": "CF-1.8", "title": "sphere-forecast training store",
        "history": f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ} {command or 'pipelines.prepare'}",
        "provenance": _provenance(config, command, paths, source_grid), "pipelines_version": pipelines.__version__,
        "time_gaps": json.dumps(gaps), "appended": "[]",
    }


def _handle_nans(state: xr.Dataset, fill: str) -> tuple[xr.Dataset, xr.Dataset | None]:
    """``fill="nearest"``: count now, report, fill lazily. ``"fail"``: counts stay lazy for pass 1."""
    counts = nan_counts(state)
    if fill == "fail":
        return state, counts
    counts = counts.compute()
    report = nan_report(counts)
    if report:
        warnings.warn(f"filling NaNs and Infs with the nearest valid value: {report}", stacklevel=3)
        state = fill_nearest(state, counts)
    return state, None


def _to_store_dtype(ds: xr.Dataset) -> xr.Dataset:
    out = ds.astype(np.float32)
    for name in ds.data_vars:
        out[name].attrs = ds[name].attrs
    out["time"].attrs.update({"standard_name": "time", "long_name": "time", "axis": "T"})
    return out


def _write_pass(path: Path, data: xr.Dataset, counts: xr.Dataset | None, append: bool) -> None:
    """Pass 1: stream the regridded data into ``path``; raise if the source had NaNs."""
    if append:
        job = data.to_zarr(path, append_dim="time", consolidated=False, zarr_format=3, compute=False)
    else:
        job = write_group(path, None, data, compute=False)
    if counts is None:
        dask.compute(job)
        return
    _, counts = dask.compute(job, counts)
    report = nan_report(counts)
    if report:
        raise InputError(f"the input has missing values ({report}); pass --fill nearest to fill them")


def _statistics_pass(path: Path, config: PrepareConfig, target: Grid, step: pd.Timedelta) -> None:
    """Pass 2: statistics and climatology of the regridded data, one dask computation."""
    data = xr.open_zarr(path, consolidated=False)[list(config.variables)]
    data = data.sel(time=slice(None, statistics_end(config.statistics_end, pd.DatetimeIndex(data["time"].values))))
    if data.sizes["time"] < 2:
        raise InputError(f"statistics_end={config.statistics_end!r} leaves {data.sizes['time']} time(s) for the "
                         "statistics; at least 2 are needed")
    span = pd.Timedelta(data["time"].values[-1] - data["time"].values[0])
    if span < pd.Timedelta(days=365):
        warnings.warn(f"the climatology comes from {span.total_seconds() / 86400:.0f} days of data, less than a year: "
                      "it is close to the data themselves, so ACC and the climatology baseline say little",
                      stacklevel=3)
    data = data.chunk({"time": time_chunk(data)})  # the store's one-step chunks make tiny tasks
    stats = statistics(data, target, step)
    clim = climatology(data, config.climatology_smoothing_days)
    clim_job = write_group(path, "climatology", clim, chunks={"dayofyear": 1, "hour": -1}, compute=False)
    stats, _ = dask.compute(stats, clim_job)
    bad = [str(v) for v in stats.data_vars if not np.isfinite(stats[v].values).all()]
    if bad:  # a model normalised with them would only produce NaN
        raise InputError(f"the statistics ({', '.join(bad)}) are not finite: the data hold non-finite values "
                         "that were not counted; nothing was written")
    write_group(path, "statistics", stats)


def statistics_end(spec: str | None, times: pd.DatetimeIndex) -> pd.Timestamp | None:
    """The last time of the statistics period: ``None`` (every time), ISO, or ``"-5d"`` (before the end)."""
    if spec is None:
        return None
    try:
        if spec.strip().startswith("-"):
            return times[-1] + pd.Timedelta(spec.strip())
        return pd.Timestamp(spec)
    except ValueError:
        raise InputError(f"statistics_end {spec!r} is neither an ISO time nor a negative duration like -5d") from None


def _appendable(state: xr.Dataset, out: Path, config: PrepareConfig) -> tuple[xr.Dataset, pd.Timedelta | None]:
    """For an append: the times to add (``append_new_only``: those after the store's end) and the
    store's time step (one new time is enough then); otherwise ``(state, None)``."""
    if not config.append:
        return state, None
    store = open_store(out)
    if config.append_new_only:
        state = state.isel(time=np.nonzero(state["time"].values > store.times[-1].to_datetime64())[0])
    return state, store.time_step


def _check_append(out: Path, data: xr.Dataset, target: Grid, config: PrepareConfig) -> None:
    store = open_store(out)
    if store.grid != target:
        raise InputError(f"cannot append: {out} is on grid {store.grid}, the new data on {target}")
    if store.variables != list(config.variables):
        raise InputError(f"cannot append: {out} holds variables {store.variables}, the request is "
                         f"{list(config.variables)}")
    new = pd.DatetimeIndex(data["time"].values)
    overlap = new.intersection(store.times)
    if len(overlap):
        raise InputError(f"cannot append: {len(overlap)} time(s) are already in {out} ({overlap[0]} .. "
                         f"{overlap[-1]}); select later times with the override start=<ISO time> or pass only the new files")
    if new[0] <= store.times[-1]:
        raise InputError(f"cannot append: new times start at {new[0]}, before the store's last time "
                         f"{store.times[-1]}; append only adds later times")
    if new[0] - store.times[-1] != store.time_step:
        warnings.warn(f"appended times start {new[0] - store.times[-1]} after the store ends "
                      f"(time step {store.time_step}): the record has a gap", stacklevel=3)


def _append(out: Path, data: xr.Dataset, counts: xr.Dataset | None, config: PrepareConfig,
            command: str | None) -> None:
    times = pd.DatetimeIndex(data["time"].values)
    with atomic_path(out, overwrite=True) as tmp:
        linked_copy(out, tmp, link_dirs=list(config.variables))
        data = data.drop_vars(["lat", "lon"]).assign_attrs(open_store(out).data.attrs)  # append rewrites root attrs
        _write_pass(tmp, data, counts, append=True)
        root = zarr.open_group(str(tmp), mode="r+", zarr_format=3)
        appended = json.loads(str(root.attrs.get("appended", "[]")))
        appended.append({"start": str(times[0]), "end": str(times[-1]), "n_times": len(times), "command": command})
        root.attrs.update({"appended": json.dumps(appended),
                           "history": f"{root.attrs.get('history', '')}\n"
                                      f"{_dt.datetime.now(_dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ} append "
                                      f"{times[0]} .. {times[-1]}: {command or 'pipelines.prepare'}"})
        consolidate(tmp)


def prepare(config: PrepareConfig, command: str | None = None) -> Path:
    """Run the pipeline described by ``config`` and return the path of the store.

    Raises
    ------
    InputError
        For bad input (missing variable, different grids, bad times, NaNs with
        ``fill="fail"``, unreadable file, append conflicts); nothing is written then.
    """
    target = Grid.parse(config.grid)
    log.info("prepare: %s", config.model_dump_json())
    out = check_prepare_output(config)   # a missing input or a bad output fails before a cluster starts
    with hold_lock(lock_path(out), 0, f"another `forecast prepare` is writing {out}"), \
            get_client(config.scheduler, config.n_workers):
        removed = remove_stale_temporaries(out)
        if removed:
            log.info("removed %d temporary store(s) left by an earlier, killed run of %s", removed, out)
        ds, paths, source_grid = open_inputs(source_inputs(config))
        state = select(ds, list(config.variables))
        state, known_step = _appendable(state, out, config)
        if state.sizes["time"] == 0:
            log.info("append: the inputs hold no time after the end of %s; it is unchanged", out)
            return out
        state, step, gaps = select_times(state, config.start, config.end, config.time_step, known_step)
        state, counts = _handle_nans(state, config.fill)
        data = _to_store_dtype(regrid(state, target, config.method, source=source_grid))
        if config.append:
            _check_append(out, data, target, config)
            _append(out, data, counts, config, command)
            return out
        data.attrs = _root_attrs(config, command, paths, source_grid, target, step, gaps)
        static = _static(ds, config, source_grid, target)
        with atomic_path(out, overwrite=True) as tmp:
            _write_pass(tmp, data, counts, append=False)
            _statistics_pass(tmp, config, target, step)
            if static is not None:
                write_group(tmp, "static", static)
            consolidate(tmp)
    log.info("wrote %s: %d times on %s", out, data.sizes["time"], target)
    return out


def check_prepare_output(config: PrepareConfig) -> Path:
    """The store path, refused when it is (or contains, or lies inside) an input, lies under
    a file, or exists without ``overwrite`` or ``append`` (or does not exist with ``append``)."""
    inputs = expand_inputs(list(config.inputs)) if config.source == "files" else []
    sources = None if config.source == "files" else config.sources_dir
    out = check_output(config.out, {"--input": inputs, "sources_dir": sources}, "--out", "dir")
    if config.append and config.overwrite:
        raise InputError("--append adds times to a store and --overwrite replaces it; pass one of them")
    if config.append and not out.exists():
        raise InputError(f"cannot append: {out} does not exist; run without --append to create it")
    if out.exists() and not (config.append or config.overwrite):
        raise InputError(f"--out {out} already exists; pass --overwrite to replace it or --append to add later "
                         "times to it")
    return out


def _static(ds: xr.Dataset, config: PrepareConfig, source_grid: Grid, target: Grid) -> xr.Dataset | None:
    if not config.static_variables:
        return None
    static = select(ds, list(config.static_variables), static=True)
    if int(static.isnull().sum().to_array().sum()):
        raise InputError(f"static fields {list(config.static_variables)} contain NaNs; they must be complete")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the finer-grid warning was given for the state already
        out = regrid(static, target, config.method, source=source_grid).astype(np.float32).compute()
    for name in static.data_vars:
        out[name].attrs = static[name].attrs
    return out
