r"""The embedded data source: shallow-water flow on the rotating sphere.

The state is integrated with torch-harmonics' spectral
:class:`~torch_harmonics.examples.ShallowWaterSolver` in vorticity-divergence form
(Williamson et al. 1992, J. Comput. Phys. 102, 211-224):

.. math::

    \partial_t \zeta &= -\nabla\cdot\big((\zeta + f)\,\mathbf{u}\big), \\
    \partial_t \delta &= \mathbf{k}\cdot\nabla\times\big((\zeta + f)\,\mathbf{u}\big)
        - \nabla^2\big(\Phi + \tfrac12|\mathbf{u}|^2\big), \\
    \partial_t \Phi &= -\nabla\cdot(\Phi\,\mathbf{u}),

with relative vorticity :math:`\zeta` (s\ :sup:`-1`), divergence :math:`\delta`
(s\ :sup:`-1`), geopotential :math:`\Phi = g h` (m\ :sup:`2` s\ :sup:`-2`) and Coriolis
parameter :math:`f = 2\Omega\sin\varphi`. Time stepping is third-order Adams-Bashforth
with the solver's implicit hyperdiffusion on :math:`\zeta, \delta`.

Initial conditions are random (seeded) vorticity with a red, atmosphere-like kinetic
energy spectrum :math:`E(l) \propto (l/l_0)^3 / (1 + (l/l_0)^8)` peaking near total
wavenumber :math:`l_0` (``peak_wavenumber``), scaled to a root-mean-square wind
(``wind_rms``, m s\ :sup:`-1`). A white spectrum (the solver's own
``random_initial_condition``) puts most of the energy at the truncation, where the
hyperdiffusion removes it within hours and the height field, left out of balance,
rings with inertia-gravity waves: useless as weather. The start is optionally
*balanced*: divergence set to zero and the geopotential replaced by the solution of the
nonlinear balance equation

.. math:: \nabla^2\big(\Phi + \tfrac12|\mathbf{u}|^2\big) = \mathbf{k}\cdot\nabla\times\big((\zeta + f)\,\mathbf{u}\big),

i.e. :math:`\partial_t\delta = 0` at the start, so the flow starts without the large
gravity waves an independent random height field would launch. The global mean of
:math:`\Phi` is set to :math:`g\,\bar h` and is conserved exactly by the spectral scheme
(the :math:`l = 0` coefficient of a divergence is zero), which is checked at every output.

Outputs follow ERA5 conventions (dims ``time``, ``latitude`` from 90 to -90,
``longitude`` 0..360, CF time units) with variables ``gh``, ``u``, ``v``, ``vo``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch_harmonics
import xarray as xr
from torch_harmonics.examples import ShallowWaterSolver

from pipelines.atomic import atomic_path
from pipelines.config import SWESourceConfig
from pipelines.errors import InputError
from pipelines.grids import EARTH_RADIUS_M, Grid
from pipelines.progress import progress

logger = logging.getLogger(__name__)

GRAVITY = 9.80616  # m s-2, the solver's default
OMEGA = 7.292e-5  # rad s-1
MEAN_DEPTH_M = 10.0e3  # the solver's havg
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

# Relative drift of the global mean geopotential above which the run is declared broken;
# the scheme conserves it to round-off (~1e-15) in float64.
_MEAN_DRIFT_TOL = 1e-9


class SimulationError(InputError):
    """The integration produced non-finite values or lost mass (unstable parameters)."""


@dataclass(frozen=True)
class SWEParameters:
    """Everything that determines a shallow-water trajectory (recorded in file attrs)."""

    grid: Grid
    output_step_hours: float = 1.0
    substep_seconds: float = 450.0
    spinup_hours: float = 0.0
    seed: int = 0
    wind_rms: float = 15.0
    peak_wavenumber: float = 6.0
    balanced: bool = True
    lmax: int | None = None
    start: str = "2020-01-01T00:00"

    @property
    def substeps(self) -> int:
        return _whole(self.output_step_hours * 3600.0 / self.substep_seconds,
                      f"output_step_hours*3600 / substep_seconds ({self.output_step_hours} h / {self.substep_seconds} s)")

    @property
    def spinup_substeps(self) -> int:
        return _whole(self.spinup_hours * 3600.0 / self.substep_seconds,
                      f"spin-up / substep_seconds ({self.spinup_hours} h / {self.substep_seconds} s)")

    @property
    def truncation(self) -> int:
        """Spectral truncation ``lmax = mmax``; default ``ceil(nlat / 3)`` (alias-free with margin)."""
        return self.lmax if self.lmax is not None else math.ceil(self.grid.nlat / 3)

    def max_stable_substep(self) -> float:
        r"""Rough sub-step limit (s) from the fastest resolved gravity wave.

        :math:`\omega = \sqrt{g \bar h \, l(l+1)} / r` at :math:`l = l_{max} - 1`; AB3 is
        stable for :math:`|\omega \Delta t| < 0.72` on the imaginary axis. Advection and
        hyperdiffusion shift the true limit a little.
        """
        l = self.truncation - 1
        omega = math.sqrt(GRAVITY * MEAN_DEPTH_M * l * (l + 1)) / EARTH_RADIUS_M
        return 0.72 / omega

    def validate(self) -> None:
        """Raise :class:`InputError` for values the solver cannot use."""
        for name in ("output_step_hours", "substep_seconds", "wind_rms", "peak_wavenumber"):
            if not getattr(self, name) > 0:
                raise InputError(f"swe.{name} must be > 0, got {getattr(self, name)}")
        if self.spinup_hours < 0:
            raise InputError(f"swe.spinup_days must be >= 0, got {self.spinup_hours / 24:g}")
        if not 2 <= self.truncation <= self.grid.nlat:
            raise InputError(f"spectral truncation lmax={self.truncation} must be between 2 and nlat={self.grid.nlat}")
        _ = self.substeps, self.spinup_substeps
        _parse_start(self.start)
        if self.substep_seconds > self.max_stable_substep():
            logger.warning("swe.substep_seconds=%g is above the gravity-wave stability limit of about %.0f s on %s; "
                           "the run will probably blow up", self.substep_seconds, self.max_stable_substep(), self.grid)

    def describe(self) -> str:
        """One-line provenance for the ``source`` attribute."""
        items = {**asdict(self), "grid": str(self.grid), "lmax": self.truncation, "gravity": GRAVITY,
                 "omega": OMEGA, "radius": EARTH_RADIUS_M, "havg": MEAN_DEPTH_M}
        settings = ", ".join(f"{k}={v}" for k, v in items.items())
        return f"torch-harmonics {torch_harmonics.__version__} ShallowWaterSolver (Adams-Bashforth 3); {settings}"


def _whole(x: float, what: str) -> int:
    n = round(x)
    if abs(x - n) > 1e-9 * max(1.0, abs(x)):
        raise InputError(f"{what} must be a whole number, got {x:g}")
    return int(n)


def _parse_start(start: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(start)
    except (ValueError, TypeError):
        raise InputError(f"swe.start {start!r} is not a date-time; expected e.g. 2020-01-01T00:00") from None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp


# -- solver -----------------------------------------------------------------------------
def build_solver(params: SWEParameters) -> ShallowWaterSolver:
    """The torch-harmonics solver on ``params.grid`` with sub-step ``params.substep_seconds`` (s)."""
    lmax = params.truncation
    return ShallowWaterSolver(params.grid.nlat, params.grid.nlon, params.substep_seconds, lmax=lmax, mmax=lmax,
                              grid=params.grid.kind, radius=EARTH_RADIUS_M, omega=OMEGA, gravity=GRAVITY,
                              havg=MEAN_DEPTH_M)


def energy_spectrum(l: torch.Tensor, peak_wavenumber: float) -> torch.Tensor:
    r"""Shape of the initial kinetic energy per total wavenumber, :math:`(l/l_0)^3 / (1 + (l/l_0)^8)`
    (dimensionless; about :math:`l^3` below the peak, :math:`l^{-5}` above it)."""
    x = l / peak_wavenumber
    return x**3 / (1.0 + x**8)


def initial_condition(solver: ShallowWaterSolver, seed: int, wind_rms: float = 15.0, peak_wavenumber: float = 6.0,
                      balanced: bool = True) -> torch.Tensor:
    r"""Seeded random spectral state ``(3, lmax, mmax)`` complex128: :math:`[\Phi, \zeta, \delta]`.

    Vorticity coefficients are complex Gaussian with variance shaped so that the kinetic
    energy per total wavenumber follows :func:`energy_spectrum` (for a non-divergent flow
    :math:`E_l = \frac{a^2}{2 l (l+1)} \sum_m |\zeta_{lm}|^2`, :math:`2l+1` coefficients per
    :math:`l`), then scaled so that the area-mean :math:`|\mathbf{u}|^2` is ``wind_rms``\ :sup:`2`
    (m s\ :sup:`-1`). Unbalanced: the solver's random geopotential and divergence are kept.

    The draw uses torch's global generator (``random_initial_condition`` takes no
    generator) inside :func:`torch.random.fork_rng`, so the caller's RNG state is untouched
    and the same ``seed`` gives a bit-identical state.
    """
    if not wind_rms > 0 or not peak_wavenumber > 0:
        raise InputError(f"swe.wind_rms and swe.peak_wavenumber must be > 0, got {wind_rms} and {peak_wavenumber}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        uspec = solver.random_initial_condition(mach=0.1)
    # Round trip through the grid: drops the imaginary parts of m = 0 that no real field has.
    uspec = torch.tril(solver.grid2spec(solver.spec2grid(uspec)))
    uspec[1:, 0, 0] = 0.0  # a global mean vorticity/divergence is impossible on a sphere
    l = torch.arange(uspec.shape[1], dtype=torch.float64)[:, None]
    shape = torch.sqrt(l * (l + 1) * energy_spectrum(l, peak_wavenumber) / (2 * l + 1))
    uspec[1] = uspec[1] * shape
    wind = solver.getuv(uspec[1:].clone().index_fill_(0, torch.tensor([1]), 0.0))
    uspec[1] = uspec[1] * (wind_rms / float((wind**2).sum(dim=0).mean().sqrt()))
    if balanced:
        uspec = _balance(solver, uspec)
    return uspec


def _balance(solver: ShallowWaterSolver, uspec: torch.Tensor) -> torch.Tensor:
    """Zero divergence; geopotential from the nonlinear balance equation, mean ``g * havg``."""
    uspec = uspec.clone()
    uspec[2] = 0.0
    uv = solver.getuv(uspec[1:])
    absolute_vorticity = solver.spec2grid(uspec[1]) + solver.coriolis
    curl_flux = solver.vrtdivspec(uv * absolute_vorticity)[0]
    kinetic = solver.grid2spec(0.5 * (uv**2).sum(dim=0))
    uspec[0] = solver.invlap * curl_flux - kinetic
    uspec[0, 0, 0] = math.sqrt(4 * math.pi) * solver.gravity * solver.havg  # Y_00 = 1 / sqrt(4 pi)
    return torch.tril(uspec)


class AdamsBashforth3:
    """Third-order Adams-Bashforth stepping of a :class:`ShallowWaterSolver` state.

    Unlike ``ShallowWaterSolver.timestep``, which restarts with forward Euler at every
    call, the tendency history is kept between calls, so the trajectory does not depend
    on how often it is sampled. Start-up: forward Euler, then AB2, then AB3.
    """

    _COEFFS = ((1.0,), (1.5, -0.5), (23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0))

    def __init__(self, solver: ShallowWaterSolver, uspec: torch.Tensor) -> None:
        self.solver = solver
        self.uspec = uspec
        self.history: list[torch.Tensor] = []  # newest first

    def step(self, n: int) -> torch.Tensor:
        """Advance ``n`` sub-steps of ``solver.dt`` seconds; return the spectral state."""
        solver = self.solver
        for _ in range(n):
            self.history = [solver.dudtspec(self.uspec), *self.history[:2]]
            coeffs = self._COEFFS[len(self.history) - 1]
            tendency = sum(c * d for c, d in zip(coeffs, self.history))
            self.uspec = self.uspec + solver.dt * tendency
            self.uspec[1:] = solver.hyperdiff * self.uspec[1:]  # implicit hyperdiffusion
        return self.uspec


def grid_fields(solver: ShallowWaterSolver, uspec: torch.Tensor) -> np.ndarray:
    """Grid-point fields ``(4, nlat, nlon)`` float64: ``gh`` (m), ``u``, ``v`` (m s-1), ``vo`` (s-1)."""
    huv = solver.gethuv(uspec)
    vorticity = solver.spec2grid(uspec[1])
    fields = torch.stack((huv[0] / solver.gravity, huv[1], huv[2], vorticity))
    return fields.numpy()


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (restored after); ``None`` leaves the setting alone."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def trajectory(params: SWEParameters, n_steps: int, num_threads: int | None = 1) -> Iterator[np.ndarray]:
    """Yield ``n_steps`` output states ``(4, nlat, nlon)`` (see :func:`grid_fields`), after spin-up.

    Raises
    ------
    SimulationError
        When the state becomes non-finite or the global mean height drifts (unstable
        ``substep_seconds``/``wind_rms``), naming the step and what to change.
    """
    params.validate()
    with _torch_threads(num_threads), torch.inference_mode():
        solver = build_solver(params)
        stepper = AdamsBashforth3(solver, initial_condition(solver, params.seed, params.wind_rms, params.peak_wavenumber, params.balanced))
        mean0 = _mean_geopotential(solver, stepper.uspec)
        stepper.step(params.spinup_substeps)
        _check(solver, stepper.uspec, mean0, params, "after spin-up")
        for k in progress(range(n_steps), desc="shallow water", unit="step"):
            if k > 0:
                stepper.step(params.substeps)
            _check(solver, stepper.uspec, mean0, params, f"at output step {k}")
            yield grid_fields(solver, stepper.uspec)


def _mean_geopotential(solver: ShallowWaterSolver, uspec: torch.Tensor) -> float:
    phi = solver.spec2grid(uspec[0])
    return float(solver.integrate_grid(phi, dimensionless=True) / (4 * math.pi))


def _check(solver: ShallowWaterSolver, uspec: torch.Tensor, mean0: float, params: SWEParameters, where: str) -> None:
    """Raise :class:`SimulationError` on non-finite values or a drift of the conserved mean height."""
    if not bool(torch.isfinite(torch.view_as_real(uspec)).all()):
        problem = "non-finite values"
    else:
        drift = abs(_mean_geopotential(solver, uspec) / mean0 - 1.0)
        if drift <= _MEAN_DRIFT_TOL:
            return
        problem = f"global mean height drifted by {drift:.1e}, conserved to round-off when stable"
    raise SimulationError(
        f"shallow-water run became unstable {where} ({problem}); reduce swe.substep_seconds (now "
        f"{params.substep_seconds:g}; gravity-wave limit about {params.max_stable_substep():.0f} s on {params.grid}) "
        f"or swe.wind_rms (now {params.wind_rms:g} m s-1)")


# -- xarray ---------------------------------------------------------------------------
def output_times(params: SWEParameters, n_steps: int) -> pd.DatetimeIndex:
    """Valid times of the outputs: ``start + k * output_step_hours``, ``k = 0 .. n_steps - 1``."""
    step = pd.Timedelta(hours=params.output_step_hours)
    return pd.DatetimeIndex([_parse_start(params.start) + k * step for k in range(n_steps)], name="time")


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
                 lmax: int | None = None, start: str = "2020-01-01T00:00",
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
    num_threads
        Torch intra-op threads during the run (restored afterwards). The transforms are
        small, so 1 is fastest up to about 128x256 and keeps results independent of
        the caller's thread setting; ``None`` keeps the current setting.

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
                           peak_wavenumber, balanced, lmax, start)
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
                           config.balanced, None, config.start)
    params.validate()
    n_steps = _whole(config.days * 24.0 / config.output_step_hours,
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
        ``peak_wavenumber``, ``balanced``
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
