r"""Shallow-water flow on the rotating sphere: the physics of the embedded data source.

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

Left to itself the flow decays: its small scales lose most of their power within weeks,
so it has no climate for a long emulation to keep. With *stochastic stirring*
(:class:`Stirring`) the vorticity equation gains a random forcing and a linear drag,

.. math:: \partial_t \zeta \mathrel{+}= F - \zeta / \tau_d, \qquad
          \partial_t \delta \mathrel{+}= -\delta / \tau_d, \qquad
          \hat F_{lm}(t + \Delta t) = a \hat F_{lm}(t) + \sqrt{1 - a^2}\, \sigma\, \xi_{lm},
          \quad a = e^{-\Delta t / \tau_F},

where :math:`F` lives on the degrees :math:`|l - l_F| \le w` (an AR(1) in time with
e-folding :math:`\tau_F`, fresh complex Gaussian :math:`\xi` each sub-step) and
:math:`\sigma` makes its area-mean square :math:`F_{rms}^2`. The energy it puts in at
:math:`l_F` cascades up to the large scales, where the drag takes it out, and its
enstrophy down to the truncation, where the hyperdiffusion does: the forced-dissipative
turbulence of two-dimensional flows (Vallis 2017, *Atmospheric and Oceanic Fluid
Dynamics*, ch. 12). After a spin-up of about two drag times the flow is statistically
stationary, with power at every resolved degree. Neither term changes the global mean
of :math:`\Phi`. (Relaxing the state towards a fixed one instead, Held-Suarez style,
was tried: the flow settles into a forced *steady* state, not a turbulent one.)

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

This module is the physics: parameters, initial state, balance, time stepping and the
conservation check; :mod:`pipelines.sources.swe` turns trajectories into ERA5-convention
datasets and daily NetCDF files.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch
import torch_harmonics
from torch_harmonics.examples import ShallowWaterSolver

from pipelines.errors import InputError
from pipelines.grids import EARTH_RADIUS_M, Grid
from pipelines.progress import progress
from pipelines.sources.swe_stepping import AdamsBashforth3

logger = logging.getLogger("pipelines.sources.swe")

GRAVITY = 9.80616  # m s-2, the solver's default
OMEGA = 7.292e-5  # rad s-1
MEAN_DEPTH_M = 10.0e3  # the solver's havg

# Relative drift of the global mean geopotential above which the run is declared broken;
# the scheme conserves it to round-off (~1e-15) in float64.
_MEAN_DRIFT_TOL = 1e-9


class SimulationError(InputError):
    """The integration produced non-finite values or lost mass (unstable parameters)."""


@dataclass(frozen=True)
class Stirring:
    """Stochastic stirring and drag (module docstring): a statistically stationary flow."""

    rms: float = 1.5e-10            # s-2, F_rms: rms vorticity tendency of the stirring
    degree: float = 10.0            # l_F
    width: float = 2.0              # w: stirred degrees |l - l_F| <= w
    correlation_hours: float = 24.0  # tau_F
    drag_days: float = 10.0         # tau_d

    def validate(self, truncation: int) -> None:
        for name in ("rms", "degree", "correlation_hours", "drag_days"):
            if not getattr(self, name) > 0:
                raise InputError(f"swe.stirring.{name} must be > 0, got {getattr(self, name)}")
        if not self.width >= 0:
            raise InputError(f"swe.stirring.width must be >= 0, got {self.width}")
        if max(1, math.ceil(self.degree - self.width)) > truncation - 1:
            raise InputError(f"swe.stirring stirs degrees {self.degree:g} +- {self.width:g}, none of them below the "
                             f"solver's truncation lmax={truncation}; lower swe.stirring.degree")


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
    stirring: Stirring | None = None

    @property
    def substeps(self) -> int:
        return whole_number(self.output_step_hours * 3600.0 / self.substep_seconds,
                      f"output_step_hours*3600 / substep_seconds ({self.output_step_hours} h / {self.substep_seconds} s)")

    @property
    def spinup_substeps(self) -> int:
        return whole_number(self.spinup_hours * 3600.0 / self.substep_seconds,
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
        parse_start(self.start)
        if self.stirring is not None:
            self.stirring.validate(self.truncation)
        if self.substep_seconds > self.max_stable_substep():
            logger.warning("swe.substep_seconds=%g is above the gravity-wave stability limit of about %.0f s on %s; "
                           "the run will probably blow up", self.substep_seconds, self.max_stable_substep(), self.grid)

    def describe(self) -> str:
        """One-line provenance for the ``source`` attribute."""
        items = {**asdict(self), "grid": str(self.grid), "lmax": self.truncation, "gravity": GRAVITY,
                 "omega": OMEGA, "radius": EARTH_RADIUS_M, "havg": MEAN_DEPTH_M}
        settings = ", ".join(f"{k}={v}" for k, v in items.items())
        return f"torch-harmonics {torch_harmonics.__version__} ShallowWaterSolver (Adams-Bashforth 3); {settings}"


def whole_number(x: float, what: str) -> int:
    n = round(x)
    if abs(x - n) > 1e-9 * max(1.0, abs(x)):
        raise InputError(f"{what} must be a whole number, got {x:g}")
    return int(n)


def parse_start(start: str) -> pd.Timestamp:
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


class StirringForce:
    r"""The stirring's state on one solver: :math:`\hat F` ``(lmax, mmax)`` complex128, advanced
    once per sub-step from its own seeded generator (module docstring).

    :math:`\sigma` comes from Parseval: a field with unit coefficients on the stirred
    degrees has the area-mean square that :math:`\xi` (unit variance per coefficient:
    real for :math:`m = 0`, complex with variance 1/2 per part otherwise) has on average.
    """

    def __init__(self, solver: ShallowWaterSolver, stirring: Stirring, seed: int) -> None:
        lmax, mmax = solver.lmax, solver.mmax
        l = torch.arange(lmax, dtype=torch.float64)[:, None].expand(lmax, mmax)
        m = torch.arange(mmax)[None, :].expand(lmax, mmax)
        self.band = ((l - stirring.degree).abs() <= stirring.width) & (l >= 1) & (m <= l)
        unit = solver.spec2grid(self.band.to(torch.complex128))
        mean_square = float(solver.integrate_grid(unit**2, dimensionless=True)) / (4 * math.pi)
        self.sigma = stirring.rms / math.sqrt(mean_square)
        self.a = math.exp(-solver.dt / (stirring.correlation_hours * 3600.0))
        self.drag = 1.0 / (stirring.drag_days * 86400.0)
        # its own stream, apart from the initial condition's, so stirring leaves the start alone
        self.generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 1]).generate_state(1)[0]))
        self.force = self._draw()  # from the stationary distribution

    def _draw(self) -> torch.Tensor:
        shape = self.band.shape
        re = torch.randn(shape, generator=self.generator, dtype=torch.float64)
        im = torch.randn(shape, generator=self.generator, dtype=torch.float64)
        xi = torch.complex(re, im) * math.sqrt(0.5)
        xi[:, 0] = re[:, 0].to(torch.complex128)  # m = 0: real, unit variance
        return self.sigma * xi * self.band

    def tendency(self, uspec: torch.Tensor) -> torch.Tensor:
        """The stirring and the drag, ``(3, lmax, mmax)``: added to the solver's tendency."""
        extra = torch.zeros_like(uspec)
        extra[1] = self.force - self.drag * uspec[1]
        extra[2] = -self.drag * uspec[2]
        return extra

    def advance(self) -> None:
        self.force = self.a * self.force + math.sqrt(1.0 - self.a**2) * self._draw()


def grid_fields(solver: ShallowWaterSolver, uspec: torch.Tensor) -> np.ndarray:
    """Grid-point fields ``(4, nlat, nlon)`` float64: ``gh`` (m), ``u``, ``v`` (m s-1), ``vo`` (s-1)."""
    huv = solver.gethuv(uspec)
    vorticity = solver.spec2grid(uspec[1])
    fields = torch.stack((huv[0] / solver.gravity, huv[1], huv[2], vorticity))
    return fields.numpy()


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
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
    with torch_threads(num_threads), torch.inference_mode():
        solver = build_solver(params)
        start = initial_condition(solver, params.seed, params.wind_rms, params.peak_wavenumber, params.balanced)
        stirring = StirringForce(solver, params.stirring, params.seed) if params.stirring is not None else None
        stepper = AdamsBashforth3(solver, start, stirring)
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
