"""The embedded data source: shallow-water flow on the rotating sphere, as reanalysis-like files.

:mod:`pipelines.sources.shallow_water` integrates the equations (the physics and its
references); this module turns a trajectory into an ERA5-convention dataset
(:func:`simulate_swe`: dims ``time``, ``latitude`` from 90 to -90, ``longitude`` 0..360,
CF time units, variables ``gh``, ``u``, ``v``, ``vo``) and into one NetCDF file per day
(:func:`generate_swe`, what ``forecast prepare --source swe`` reads like any reanalysis).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.atomic import atomic_path
from pipelines.config import SWESourceConfig
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.sources.shallow_water import (GRAVITY, MEAN_DEPTH_M, OMEGA, SimulationError, Stirring,
                                             SWEParameters, build_solver, initial_condition, parse_start, trajectory,
                                             whole_number)

__all__ = ["simulate_swe", "generate_swe", "to_dataset", "SWEParameters", "SimulationError", "build_solver",
           "initial_condition", "Stirring", "GRAVITY", "OMEGA", "MEAN_DEPTH_M", "VARIABLES"]

logger = logging.getLogger(__name__)

TIME_UNITS = "hours since 1900-01-01 00:00:00"
CALENDAR = "proleptic_gregorian"
FILE_PATTERN = "swe_{date:%Y%m%d}.nc"

VARIABLES: dict[str, dict[str, str]] = {
    "gh": {"units": "m", "long_name": "geopotential height of the fluid layer",
           "standard_name": "geopotential_height"},
    "u": {"units": "m s-1", "long_name": "eastward wind", "standard_name": "eastward_wind"},
    "v": {"units": "m s-1", "long_name": "northward wind", "standard_name": "northward_wind"},
    "vo": {"units": "s-1", "long_name": "relative vorticity", "standard_name": "atmosphere_relative_vorticity"},
}


# -- xarray ---------------------------------------------------------------------------
def output_times(params: SWEParameters, n_steps: int) -> pd.DatetimeIndex:
    """Valid times of the outputs: ``start + k * output_step_hours``, ``k = 0 .. n_steps - 1``."""
    step = pd.Timedelta(hours=params.output_step_hours)
    return pd.DatetimeIndex([parse_start(params.start) + k * step for k in range(n_steps)], name="time")


def to_dataset(fields: np.ndarray, times: pd.DatetimeIndex, params: SWEParameters) -> xr.Dataset:
    """ERA5-convention dataset from ``fields`` ``(time, 4, nlat, nlon)`` (order of :data:`VARIABLES`)."""
    grid = params.grid
    coords = {
        "time": ("time", times.values.astype("datetime64[ns]"),
                 {"standard_name": "time", "long_name": "time", "axis": "T"}),
        "latitude": ("latitude", grid.lat, {"units": "degrees_north", "standard_name": "latitude",
                                            "long_name": "latitude", "axis": "Y"}),
        "longitude": ("longitude", grid.lon, {"units": "degrees_east", "standard_name": "longitude",
                                              "long_name": "longitude", "axis": "X"}),
    }
    data_vars = {name: (("time", "latitude", "longitude"), fields[:, i].astype(np.float32), dict(attrs))
                 for i, (name, attrs) in enumerate(VARIABLES.items())}
    attrs = {"Conventions": "CF-1.8",
             "title": "Shallow-water flow on the rotating sphere (embedded training data)",
             "source": params.describe(), "grid": str(grid)}
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


def simulate_swe(grid: Grid | str, n_steps: int, *, output_step_hours: float = 1.0, substep_seconds: float = 450.0,
                 spinup_hours: float = 0.0, seed: int = 0, wind_rms: float = 15.0,
                 peak_wavenumber: float = 6.0, balanced: bool = True,
                 lmax: int | None = None, start: str = "2020-01-01T00:00", stirring: Stirring | None = None,
                 num_threads: int | None = 1) -> xr.Dataset:
    r"""Integrate the shallow-water equations and return the outputs in memory.

    Parameters
    ----------
    grid
        Solver grid, e.g. ``"legendre-gauss:64x128"`` (its ``kind`` is the solver's grid).
    n_steps
        Number of output states; the first is the (spun-up) initial state at ``start``.
    output_step_hours
        Time between outputs (h); a whole multiple of ``substep_seconds``.
    substep_seconds
        Solver time step (s). 450 s is stable at 64x128 with ``wind_rms = 15``.
    spinup_hours
        Integration (h) before ``start`` that is discarded; whole sub-steps.
    seed
        Seed of the random initial condition; the same seed gives bit-identical output.
    wind_rms
        Root-mean-square wind of the initial flow (m s-1).
    peak_wavenumber
        Total wavenumber where the initial kinetic energy spectrum peaks.
    balanced
        Start divergence-free with the geopotential in nonlinear balance (see module docs).
    lmax
        Spectral truncation ``lmax = mmax``; default ``ceil(nlat / 3)``.
    start
        Valid time of the first output (ISO 8601, UTC).
    stirring
        Stochastic stirring and drag (:class:`~pipelines.sources.shallow_water.Stirring`):
        a statistically stationary flow; None: the unforced flow, which decays.
    num_threads
        Torch intra-op threads during the run (restored afterwards). The transforms are
        small, so threads gain little on them; 1 also keeps results independent of the
        caller's thread setting; ``None`` keeps the current setting.

    Returns
    -------
    xarray.Dataset
        Dims ``time`` (``n_steps``), ``latitude`` (``nlat``, 90 -> -90), ``longitude``
        (``nlon``, 0 -> 360 - 360/nlon); float32 variables ``gh`` (m), ``u``, ``v``
        (m s-1), ``vo`` (s-1), each ``(time, latitude, longitude)``.

    Raises
    ------
    InputError
        For invalid parameters; :class:`SimulationError` (a subclass) when the run
        becomes unstable.
    """
    if int(n_steps) != n_steps or n_steps < 1:
        raise InputError(f"n_steps must be a positive whole number, got {n_steps}")
    params = SWEParameters(Grid.parse(grid), output_step_hours, substep_seconds, spinup_hours, seed, wind_rms,
                           peak_wavenumber, balanced, lmax, start, stirring)
    fields = np.stack(list(trajectory(params, int(n_steps), num_threads)))
    return to_dataset(fields, output_times(params, int(n_steps)), params)


# -- files ------------------------------------------------------------------------------
def parameters_from_config(config: SWESourceConfig) -> tuple[SWEParameters, int]:
    """Turn the user's config into solver parameters and the number of output steps."""
    if not config.days > 0:
        raise InputError(f"swe.days must be > 0, got {config.days}")
    if not config.output_step_hours > 0:
        raise InputError(f"swe.output_step_hours must be > 0, got {config.output_step_hours}")
    params = SWEParameters(Grid.parse(config.grid), config.output_step_hours, config.substep_seconds,
                           config.spinup_days * 24.0, config.seed, config.wind_rms, config.peak_wavenumber,
                           config.balanced, config.lmax, config.start,
                           Stirring(**config.stirring.model_dump()) if config.stirring is not None else None)
    params.validate()
    n_steps = whole_number(config.days * 24.0 / config.output_step_hours,
                     f"swe.days*24 / swe.output_step_hours ({config.days} d / {config.output_step_hours} h)")
    return params, n_steps


def _encoding(ds: xr.Dataset) -> dict[str, dict]:
    hours = (ds["time"].values - np.datetime64("1900-01-01")) / np.timedelta64(1, "h")
    time_dtype = "int32" if np.all(hours == np.round(hours)) else "float64"
    encoding: dict[str, dict] = {"time": {"units": TIME_UNITS, "calendar": CALENDAR, "dtype": time_dtype,
                                          "_FillValue": None}}
    encoding.update({name: {"dtype": "float64", "_FillValue": None} for name in ("latitude", "longitude")})
    encoding.update({name: {"dtype": "float32", "_FillValue": None} for name in VARIABLES})
    return encoding


def write_day(ds: xr.Dataset, out_dir: Path, history: str) -> Path:
    """Write one day of outputs atomically to ``out_dir/swe_YYYYMMDD.nc``."""
    date = pd.Timestamp(ds["time"].values[0])
    target = out_dir / FILE_PATTERN.format(date=date)
    ds = ds.assign_attrs(history=history)
    with atomic_path(target) as tmp:
        ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=_encoding(ds))
    logger.info("wrote %s (%d times)", target, ds.sizes["time"])
    return target


def _days(times: pd.DatetimeIndex) -> list[int]:
    """Number of output steps in each calendar day, in order."""
    return list(pd.Series(1, index=times).groupby(times.normalize()).size())


def generate_swe(config: SWESourceConfig, out_dir: str | Path) -> list[Path]:
    """Run the shallow-water source and write one ERA5-convention NetCDF file per day.

    Parameters
    ----------
    config
        Grid, ``days`` of output, ``output_step_hours``, ``substep_seconds``,
        ``spinup_days`` (discarded, before ``start``), ``seed``, ``wind_rms``,
        ``peak_wavenumber``, ``balanced``, ``lmax``, ``stirring``
        and ``start`` (valid time of the first output).
    out_dir
        Directory for ``swe_YYYYMMDD.nc`` (created if missing). Each file holds the
        outputs of one calendar day: dims ``time``, ``latitude`` (90 -> -90),
        ``longitude`` (0..360); variables ``gh`` (m), ``u``, ``v`` (m s-1), ``vo`` (s-1).

    Returns
    -------
    list of Path
        The files written, in time order. Days are written as soon as they are
        complete, so memory stays at one day of output.
    """
    params, n_steps = parameters_from_config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logger.info("shallow-water source: %s", params.describe())
    times = output_times(params, n_steps)
    history = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ} pipelines.sources.swe.generate_swe"
    states, paths, offset, started = trajectory(params, n_steps), [], 0, time.perf_counter()
    for count in _days(times):
        fields = np.stack([next(states) for _ in range(count)])
        paths.append(write_day(to_dataset(fields, times[offset:offset + count], params), out_dir, history))
        offset += count
    logger.info("shallow-water source: %d steps in %.1f s -> %d files in %s", n_steps,
                time.perf_counter() - started, len(paths), out_dir)
    _warn_stale(out_dir, paths)
    return paths


def _warn_stale(out_dir: Path, written: list[Path]) -> None:
    stale = sorted(set(out_dir.glob("swe_*.nc")) - set(written))
    if stale:
        logger.warning("%s also holds %d swe_*.nc files from another run (e.g. %s); a glob over the directory "
                       "would mix them in", out_dir, len(stale), stale[0].name)
