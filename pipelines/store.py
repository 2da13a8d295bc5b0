"""The training store: a Zarr store on a model grid, with its statistics.

Layout (Zarr v3, consolidated metadata)::

    store.zarr/
      (root)        one float32 variable per physical variable, dims (time, lat, lon),
                    chunks (1, nlat, nlon); coords time (CF-encoded), lat (N -> S),
                    lon (0 -> 360); attrs: grid, variables, time_step_seconds,
                    Conventions, history, provenance (JSON), pipelines_version,
                    source_grid, regrid_method, static_variables, time_gaps (JSON list),
                    appended (JSON list of {start, end, n_times, command})
      statistics/   dims (variable,): mean, std, tendency_std (float64, physical units,
                    area-weighted), n_samples, n_tendency_samples; never changed by an append
      climatology/  one float32 variable per physical variable, dims
                    (dayofyear, hour, lat, lon): smoothed day-of-year x hour-of-day mean
      static/       optional time-invariant fields, dims (lat, lon)

All four parts are read back with :func:`open_store`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xarray as xr

from pipelines.atomic import atomic_path
from pipelines.errors import InputError
from pipelines.grids import Grid

GROUPS = ("statistics", "climatology", "static")


@dataclass
class TrainingStore:
    """A training store opened lazily (dask-backed)."""

    path: Path
    data: xr.Dataset                 # (time, lat, lon) per variable, physical units
    statistics: xr.Dataset           # (variable,) mean, std, tendency_std
    climatology: xr.Dataset | None   # (dayofyear, hour, lat, lon) per variable
    static: xr.Dataset | None        # (lat, lon) per static field

    @property
    def grid(self) -> Grid:
        return Grid.parse(self.data.attrs["grid"])

    @property
    def variables(self) -> list[str]:
        return list(self.data.attrs["variables"])

    @property
    def time_step(self) -> pd.Timedelta:
        return pd.Timedelta(seconds=float(self.data.attrs["time_step_seconds"]))

    @property
    def times(self) -> pd.DatetimeIndex:
        return pd.DatetimeIndex(self.data["time"].values)

    def provenance(self) -> dict:
        return json.loads(self.data.attrs.get("provenance", "{}"))


def _encoding(ds: xr.Dataset) -> dict:
    enc: dict = {}
    for name, var in ds.data_vars.items():
        chunks = tuple(1 if d == "time" else n for d, n in zip(var.dims, var.shape))
        enc[name] = {"chunks": chunks}
    if "time" in ds.coords:
        enc["time"] = {"units": "hours since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian", "dtype": "float64"}
    return enc


def write_store(path: str | Path, data: xr.Dataset, statistics: xr.Dataset,
                climatology: xr.Dataset | None = None, static: xr.Dataset | None = None,
                overwrite: bool = False) -> Path:
    """Write a complete store atomically (temporary sibling, then rename).

    ``data`` may be dask-backed: it is streamed chunk by chunk (on the active
    ``dask.distributed`` client, if any), so memory does not grow with the number of
    time steps.
    """
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        data.to_zarr(tmp, mode="w", encoding=_encoding(data), consolidated=False, zarr_format=3)
        for group, ds in zip(GROUPS, (statistics, climatology, static)):
            if ds is not None:
                ds.to_zarr(tmp, group=group, mode="w", encoding=_encoding(ds), consolidated=False, zarr_format=3)
        consolidate(tmp)
    return path


def write_group(path: str | Path, group: str | None, ds: xr.Dataset, chunks: dict[str, int] | None = None,
                compute: bool = True):  # noqa: ANN201 - dask Delayed when compute=False
    """Write ``ds`` as a group (``None``: the root) of a Zarr v3 store, chunked one time step
    per chunk (or by ``chunks``, ``-1`` meaning whole), without consolidating."""
    if chunks:
        ds = ds.chunk({d: c for d, c in chunks.items() if d in ds.dims})
    enc = _encoding(ds)
    for name, var in ds.data_vars.items():
        if chunks:
            enc[name]["chunks"] = tuple(n if chunks.get(str(d), n) == -1 else chunks.get(str(d), enc[name]["chunks"][i])
                                        for i, (d, n) in enumerate(zip(var.dims, var.shape)))
    # compute is a bool; to_zarr's overloads want a Literal
    return ds.to_zarr(path, group=group, mode="w" if group is None else "a", encoding=enc,  # type: ignore[call-overload]
                      consolidated=False, zarr_format=3, compute=compute)


def linked_copy(source: str | Path, target: str | Path, link_dirs: list[str]) -> None:
    """Copy a store, hard-linking (not copying) the chunk files of the arrays in ``link_dirs``.

    Used by append: chunks of one time step are never rewritten by an append, so the
    copy shares them with the original at no cost; metadata and coordinate arrays
    (rewritten by an append) are real copies, so the original stays intact until the
    new store is renamed over it.
    """
    import os
    import shutil

    source, target = Path(source), Path(target)
    for root, _dirs, files in os.walk(source):
        rel = Path(root).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        linkable = len(rel.parts) >= 2 and rel.parts[0] in link_dirs and rel.parts[1] == "c"
        for name in files:
            if linkable:
                os.link(Path(root) / name, target / rel / name)
            else:
                shutil.copy2(Path(root) / name, target / rel / name)


def consolidate(path: str | Path) -> None:
    import zarr

    zarr.consolidate_metadata(str(path))


def open_store(path: str | Path, dask: bool = True) -> TrainingStore:
    """Open a training store lazily.

    ``dask=False`` opens the variables as xarray's lazily indexed arrays, read straight from
    Zarr on ``.values`` or ``isel``: no task graph, so reading a whole small store or a few
    time steps costs a few Zarr reads instead of thousands of one-chunk tasks (the store is
    chunked one time step per chunk); keep the default for anything that computes in parallel.

    Raises
    ------
    InputError
        If ``path`` is missing or is not a store written by :func:`write_store`.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"training store {path} does not exist; create it with `forecast prepare`")
    try:
        data = xr.open_zarr(path, consolidated=None, chunks={} if dask else None)
    except Exception as exc:  # zarr raises many types for a broken store
        raise InputError(f"{path} is not a readable Zarr store ({type(exc).__name__}: {exc})") from None
    if "grid" not in data.attrs or "variables" not in data.attrs:
        raise InputError(f"{path} is a Zarr store but not a training store (no 'grid'/'variables' attributes)")
    groups = {}
    for group in GROUPS:
        try:
            groups[group] = xr.open_zarr(path, group=group, consolidated=None)
        except (FileNotFoundError, KeyError, OSError, ValueError):
            groups[group] = None
        except Exception:  # zarr's GroupNotFoundError and friends
            groups[group] = None
    if groups["statistics"] is None:
        raise InputError(f"{path} has no statistics group; re-create it with `forecast prepare`")
    return TrainingStore(path=path, data=data, **groups)
