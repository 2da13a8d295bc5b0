"""The forecast file: layout, streaming writer with resume, and reader.

Layout (verification and plots read it with :func:`open_forecast`)::

    dims        member, init_time, lead_time, lat, lon
    data vars   one float32 variable per physical variable, physical units,
                dims (member, init_time, lead_time, lat, lon), NaN where not written;
                attrs units, long_name, standard_name (when CF has one)
    coords      member (int32, standard_name realization)
                init_time (datetime64; CF "hours since 1970-01-01", forecast_reference_time)
                lead_time (timedelta64; CF "hours", forecast_period); lead 0 is the
                (perturbed) initial state
                valid_time (init_time, lead_time) datetime64 (CF time)
                lat (degrees_north, N -> S), lon (degrees_east, 0 -> 360)
    attrs       Conventions "CF-1.8", title, institution, source, history, grid (e.g.
                "legendre-gauss:64x128": the grid of the fields, the model's or --output-grid),
                model_grid, seed, config_hash, provenance (JSON: checkpoint paths, sha256s
                and steps, the resolved config, seed, initial conditions and their grid,
                time step, versions), complete (1 when every lead time of every init time
                is written)

``.zarr``: Zarr v3, consolidated metadata. ``.nc``: NetCDF4, zlib level 1, the same
chunks; times as float64 "hours since 1970-01-01 00:00:00", no ``_FillValue`` on
coordinates; dims stored as ``(member, lead_time, init_time, lat, lon)`` (and
``valid_time`` as ``(lead_time, init_time)``): CF section 2.4 wants the time axis
(``init_time``, the forecast reference time; ``lead_time`` is a duration, no time axis)
right before Y and X, with every other dim to its left, and the IOOS compliance-checker
(cf:1.8) then reports nothing. :func:`open_forecast` returns every forecast in the
order above, whatever its file.

Streaming and resume
--------------------
The whole structure is created up front in ``<out>.partial`` (a Zarr v3 directory,
chunks ``(B, 1, 1, lat, lon)``: one chunk per variable, init time, lead time and block
of ``B`` members, the work unit of :mod:`forecast.rollout.shards`), with
``progress.json`` (``config_hash``, the resolved configuration, the unit layout). Each
unit writes each lead time into its own chunks as soon as it is produced, then
atomically replaces ``units/<unit>.safetensors`` (its normalised model state, float32, in a
tensor file that loads without pickle: :mod:`forecast.tensorfile`) and
``units/<unit>.json`` (its last complete output lead). A re-run with the same
configuration continues every unit after its last complete lead time, so the output is
bit-identical to an uninterrupted run's, whichever processes ran which units. The
partial directory is Zarr for both suffixes (:func:`open_forecast` reads it, so the
complete lead times of a failed run can be inspected). When everything is written, the
attributes are completed, the metadata consolidated and the directory renamed to
``<out>`` (``.zarr``) or converted to NetCDF4 (``.nc``, written to a temporary sibling,
marked complete, renamed) and removed.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import dask.array as da
import numpy as np
import pandas as pd
import torch
import xarray as xr

from pipelines.atomic import atomic_path, remove_path, remove_stale_temporaries, temporary_sibling
from pipelines.errors import InputError, WriteError
from pipelines.grids import Grid
from forecast.rollout.background import BackgroundWriter
from forecast.rollout.progress import PROGRESS_FILE, UNITS_DIR, completed_leads, saved_config
from forecast.rollout.shards import WorkUnit
from forecast.forecast_file import CALENDAR, TIME_UNITS, is_complete, open_forecast, partial_path
from pipelines.variables import CF_ATTRS, canonical

__all__ = ["ForecastLayout", "ForecastSink", "ForecastWriter", "open_forecast", "partial_path", "cf_attributes",
           "is_complete", "remove_stale_temporaries", "remove_finalise_leftovers", "OutputWriteError", "completed_leads", "saved_config",
           "UNITS_DIR", "BackgroundWriter",
           "PROGRESS_FILE"]

log = logging.getLogger(__name__)

NETCDF_DIMS = ("member", "lead_time", "init_time", "lat", "lon")   # CF 2.4 order (module docstring)
UNIT_STATE_SUFFIX = ".safetensors"
UNIT_STATE_KIND = "sphere-forecast rollout unit state"

_LEVEL_NAME = re.compile(r"^([a-z_]*[a-z])(\d+)$")


def cf_attributes(name: str, source_attrs: dict[str, Any] | None = None) -> dict[str, str]:
    """CF attributes (``units``, ``long_name``, ``standard_name``) of a forecast variable.

    The source's own attributes win; missing ones come from
    :data:`pipelines.variables.CF_ATTRS` (``z500`` is ``z`` at 500 hPa); ``units`` is
    ``"1"`` and ``long_name`` the name when nothing is known.
    """
    attrs = {k: str(v) for k, v in (source_attrs or {}).items() if k in ("units", "long_name", "standard_name")}
    known = CF_ATTRS.get(canonical(name))
    level = None
    if known is None and (match := _LEVEL_NAME.match(name)):
        known, level = CF_ATTRS.get(canonical(match.group(1))), match.group(2)
    for key, value in (known or {}).items():
        attrs.setdefault(key, f"{value} at {level} hPa" if key == "long_name" and level else value)
    attrs.setdefault("units", "1")
    attrs.setdefault("long_name", name)
    return attrs


@dataclass
class ForecastLayout:
    """Everything needed to create the (empty) forecast structure."""

    variables: list[str]
    members: int
    init_times: pd.DatetimeIndex
    lead_times: pd.TimedeltaIndex
    grid: Grid                                   # grid of the written fields
    variable_attrs: dict[str, dict[str, str]]
    attrs: dict[str, Any] = field(default_factory=dict)
    member_chunk: int | None = None              # members per chunk (a work unit's block); None: all

    def empty_dataset(self) -> xr.Dataset:
        """The full dataset, data variables lazy (all-NaN dask arrays: never computed)."""
        m, n_init, n_lead = self.members, len(self.init_times), len(self.lead_times)
        shape = (m, n_init, n_lead, self.grid.nlat, self.grid.nlon)
        chunks = (self.member_chunk or m, 1, 1, self.grid.nlat, self.grid.nlon)
        dims = ("member", "init_time", "lead_time", "lat", "lon")
        data = {v: (dims, da.full(shape, np.nan, dtype=np.float32, chunks=chunks), self.variable_attrs[v])
                for v in self.variables}
        valid = self.init_times.values[:, None] + self.lead_times.values[None, :]
        coords = {
            "member": ("member", np.arange(m, dtype=np.int32),
                       {"standard_name": "realization", "long_name": "ensemble member", "units": "1"}),
            "init_time": ("init_time", self.init_times.values,
                          {"standard_name": "forecast_reference_time", "long_name": "initial time"}),
            "lead_time": ("lead_time", self.lead_times.values,
                          {"standard_name": "forecast_period", "long_name": "lead time"}),
            "valid_time": (("init_time", "lead_time"), valid, {"standard_name": "time", "long_name": "valid time"}),
            **self.grid.coords(),
        }
        return xr.Dataset(data, coords=coords, attrs=self.attrs)


def _encoding(ds: xr.Dataset, netcdf: bool) -> dict[str, dict]:
    enc: dict[str, dict] = {}
    for key, var in ds.data_vars.items():
        name = str(key)
        enc[name] = {"dtype": "float32", "_FillValue": np.float32(np.nan)}
        members = var.chunks[var.dims.index("member")][0] if var.chunks else var.sizes["member"]  # a unit's block
        chunks = tuple({"member": members, "lat": var.sizes["lat"], "lon": var.sizes["lon"]}.get(str(d), 1) for d in var.dims)
        if netcdf:
            enc[name].update(zlib=True, complevel=1, chunksizes=chunks)
        else:
            enc[name]["chunks"] = chunks
    for name in ("init_time", "valid_time"):
        enc[name] = {"units": TIME_UNITS, "calendar": CALENDAR, "dtype": "float64", "_FillValue": None}
    enc["lead_time"] = {"units": "hours", "dtype": "float64", "_FillValue": None}
    enc["member"] = {"dtype": "int32", "_FillValue": None}
    for name in ("lat", "lon"):
        enc[name] = {"dtype": "float64", "_FillValue": None}
    return enc


class ForecastSink(Protocol):
    """Where a rollout streams its lead times (:class:`ForecastWriter` is the Zarr/NetCDF one).

    The workflow calls, on process 0, :meth:`matches` and :meth:`create`; on every
    process :meth:`open`, then per unit :meth:`unit_state`, :meth:`write_lead` and
    :meth:`save_unit` for each output lead; on process 0 at the end :meth:`finalise`.
    A new output backend implements these methods in a module of its own.
    """

    partial: Path

    def matches(self) -> bool: ...
    def create(self, layout: ForecastLayout) -> None: ...
    def open(self, variables: list[str]) -> None: ...
    def unit_state(self, unit: WorkUnit) -> dict[str, Any] | None: ...
    def write_lead(self, unit: WorkUnit, lead_index: int, fields: np.ndarray) -> None: ...
    def save_unit(self, unit: WorkUnit, completed: int, state: torch.Tensor, rank: int = 0) -> None: ...
    def finalise(self, attrs: dict[str, Any], overwrite: bool) -> Path: ...


class ForecastWriter:
    """Streams lead times into ``<out>.partial`` and finalises it into ``out``.

    Parameters
    ----------
    out
        Final path; ``.zarr`` or ``.nc``.
    config_hash
        Identifies the run: a partial output made with another hash is started afresh.
    resolved
        The resolved configuration behind ``config_hash``, kept in ``progress.json`` so
        that a refusal can say what differs.
    """

    def __init__(self, out: str | Path, config_hash: str, resolved: dict[str, Any] | None = None):
        self.out = Path(out)
        if self.out.suffix not in (".zarr", ".nc"):
            raise InputError(f"output {self.out} must end in .zarr or .nc")
        self.partial = partial_path(self.out)
        self.config_hash = config_hash
        self.resolved = resolved
        self._arrays: dict[str, Any] = {}
        self._variables: list[str] = []

    # -- set-up and resume -------------------------------------------------------
    def matches(self) -> bool:
        """Whether a partial output made with this configuration exists (then it is resumed)."""
        saved = saved_config(self.partial)
        return saved is not None and saved["config_hash"] == self.config_hash

    def unit_state(self, unit: WorkUnit) -> dict[str, Any] | None:
        """``{"completed": k, "state": (B, C, H, W)}`` saved by ``unit``, or None.

        The state file is a tensor file (:mod:`forecast.tensorfile`): reading it runs no code.
        """
        from forecast.tensorfile import TreeFormatError, read_tree

        path = self._unit_file(unit, UNIT_STATE_SUFFIX)
        if not path.is_file():
            return None
        try:
            saved = read_tree(path, UNIT_STATE_KIND)
        except TreeFormatError:  # a state file cut short by a kill before its rename cannot exist; be safe
            log.warning("unreadable resume state of %s; recomputing it", unit)
            return None
        if saved.get("config_hash") != self.config_hash or not isinstance(saved.get("state"), torch.Tensor):
            return None
        return saved

    def _unit_file(self, unit: WorkUnit, suffix: str) -> Path:
        return self.partial / UNITS_DIR / f"{unit.key}{suffix}"

    def create(self, layout: ForecastLayout) -> None:
        """Create the empty structure in the partial directory (removing any old one).

        ``progress.json`` records the configuration and the unit layout, which
        :func:`completed_leads` needs.
        """
        remove_path(self.partial)
        ds = layout.empty_dataset()
        try:
            ds.to_zarr(self.partial, mode="w", compute=False, encoding=_encoding(ds, netcdf=False),
                       consolidated=False, zarr_format=3)
        except OSError as exc:
            raise OutputWriteError.of(exc, self.partial) from None
        progress = {"config_hash": self.config_hash, "resolved": self.resolved, "members": layout.members,
                    "member_chunk": layout.member_chunk or layout.members, "n_inits": len(layout.init_times)}
        _atomic_write(self.partial / PROGRESS_FILE, lambda p: Path(p).write_text(json.dumps(progress)))
        (self.partial / UNITS_DIR).mkdir(exist_ok=True)

    def open(self, variables: list[str]) -> None:
        import zarr

        group = zarr.open_group(str(self.partial), mode="r+")
        self._variables = list(variables)
        self._arrays = {v: group[v] for v in variables}

    # -- streaming -----------------------------------------------------------------
    def write_lead(self, unit: WorkUnit, lead_index: int, fields: np.ndarray) -> None:
        """Write one lead time of one unit: ``fields`` ``(B, C, H, W)`` float32, physical units,
        into the unit's own chunks (members ``unit.start .. unit.stop - 1``).

        Raises
        ------
        OutputWriteError
            When the file system refuses (full disk, read-only, quota): one line, naming the output.
        """
        try:
            for c, name in enumerate(self._variables):
                self._arrays[name][unit.start:unit.stop, unit.init_index, lead_index] = fields[:, c]
        except OSError as exc:
            raise OutputWriteError.of(exc, self.partial) from None

    def save_unit(self, unit: WorkUnit, completed: int, state: torch.Tensor, rank: int = 0) -> None:
        """Atomically save the unit's state after output lead ``completed``, then its ``.json``
        marker (what :func:`completed_leads` reads)."""
        from forecast.tensorfile import write_tree

        self._unit_file(unit, UNIT_STATE_SUFFIX).parent.mkdir(exist_ok=True)
        saved = {"config_hash": self.config_hash, "completed": completed, "rank": rank,
                 "state": state.detach().to("cpu", torch.float32).contiguous()}
        _atomic_write(self._unit_file(unit, UNIT_STATE_SUFFIX), lambda p: write_tree(p, saved, UNIT_STATE_KIND))
        marker = {"completed": completed, "rank": rank}
        _atomic_write(self._unit_file(unit, ".json"), lambda p: Path(p).write_text(json.dumps(marker)))

    # -- completion ----------------------------------------------------------------
    def finalise(self, attrs: dict[str, Any], overwrite: bool) -> Path:
        """Complete the attributes, consolidate and move the partial output into place.

        The partial keeps its progress file and unit states until the output is in place,
        so a finalise that fails (or is killed) leaves a partial that a re-run resumes and
        finishes; the failure's message says where the complete lead times are.
        """
        import zarr

        try:
            group = zarr.open_group(str(self.partial), mode="r+")
            # a .nc is converted from the partial: it is marked complete only once fully written
            group.attrs.update({**attrs, "complete": int(self.out.suffix == ".zarr")})
            with warnings.catch_warnings():  # "consolidated metadata is not part of the Zarr v3 spec"
                warnings.simplefilter("ignore", UserWarning)
                zarr.consolidate_metadata(str(self.partial))
            if self.out.suffix == ".zarr":
                _move_into_place(self.partial, self.out)
                for name in (UNITS_DIR, PROGRESS_FILE):
                    remove_path(self.out / name)
            else:
                _to_netcdf(self.partial, self.out, overwrite)
                remove_path(self.partial)
        except OSError as exc:
            raise OutputWriteError.of(exc, self.out) from None
        return self.out


def _move_into_place(partial: Path, out: Path) -> None:
    """Rename the finished ``partial`` directory to ``out``; a replaced ``out`` is set aside as
    ``.old-<name>-*`` first and put back if the rename fails (a kill in between: see
    :func:`~pipelines.atomic.remove_stale_temporaries`)."""
    old = None
    if out.exists() or out.is_symlink():
        old = temporary_sibling(out, ".old")
        os.replace(out, old)
    try:
        os.replace(partial, out)
    except OSError:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        remove_path(old)


def remove_finalise_leftovers(out: str | Path) -> int:
    """Remove what a run killed while finalising left beside (or in) the complete forecast
    ``out``: the ``.partial`` it was made from and a ``.zarr``'s unit states; returns how many.

    A partial made with other parameters (another run's resumable work) is kept. Call it
    only while holding ``out``'s lock.
    """
    out = Path(out)
    if not is_complete(out):
        return 0
    stale = [out / name for name in (UNITS_DIR, PROGRESS_FILE) if out.is_dir() and (out / name).exists()]
    partial, saved = partial_path(out), saved_config(partial_path(out))
    if partial.exists() and (saved is None or saved["config_hash"] == open_forecast(out).attrs.get("config_hash")):
        stale.append(partial)
    for path in stale:
        remove_path(path)
    return len(stale)


def _to_netcdf(partial: Path, out: Path, overwrite: bool) -> None:
    ds = xr.open_zarr(partial, consolidated=True, decode_timedelta=True).transpose(*NETCDF_DIMS)
    for name in ds.variables:
        ds[name].encoding = {}
    try:
        with atomic_path(out, overwrite=overwrite) as tmp:
            ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=_encoding(ds, netcdf=True))
            import netCDF4

            with netCDF4.Dataset(tmp, "a") as nc:  # only now, and still under the temporary name
                nc.setncattr("complete", np.int64(1))
    except RuntimeError as exc:  # the NetCDF library reports a refused write (full disk, size limit) so
        raise OSError(errno.EIO, f"the NetCDF library failed to write it ({exc})") from None


class OutputWriteError(WriteError):
    """The file system refused to write the forecast (full disk, read-only, quota)."""

    @classmethod
    def of(cls, exc: OSError, path: Path) -> "OutputWriteError":
        reason = exc.strerror or str(exc).splitlines()[0]
        kept = next((p for p in (path, *path.parents) if p.suffix == ".partial"), partial_path(path))
        where = (f"the complete lead times are kept in {kept} for a re-run" if kept.is_dir()
                 else f"nothing was kept ({kept} does not exist)")
        return cls(exc.errno, f"cannot write {path}: {reason}; {where}")


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputWriteError.of(exc, path.parent) from None
