r"""Many shallow-water runs in one batch: the perfect-model ensemble of the stirred flow.

The embedded data (:mod:`pipelines.sources.shallow_water`) are one run of the stirred
shallow-water equations. Its stirring :math:`F` is random and no emulator sees it, so part
of the future is unknowable from the state alone. The *perfect model* is the generator
itself used as the forecast: every member starts from the true state at the init time and
integrates the same equations with the same solver, but with a stirring of its own, drawn
from another seed and started from the stirring's stationary distribution (the forcing's
state at the init time is unknown too). No forecast of the state alone can expect a lower
CRPS or ensemble-mean error on these data: it is the physical limit of skill.

The runs are batched: the state is ``(B, 3, lmax, mmax)`` complex128,
:math:`[\Phi, \zeta, \delta]` per run, stepped by the truth's third-order Adams-Bashforth
scheme and implicit hyperdiffusion (:class:`~pipelines.sources.shallow_water.AdamsBashforth3`),
so each run is the truth's integration with another stirring (batching only changes the
order of floating-point sums). Transforms between grid fields and spectral states follow
the solver's conventions (orthonormal harmonics, no Condon-Shortley phase).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch_harmonics as th
from torch_harmonics.examples import ShallowWaterSolver

from pipelines.errors import InputError
from pipelines.grids import EARTH_RADIUS_M, Grid
from pipelines.sources.shallow_water import (GRAVITY, AdamsBashforth3, SimulationError, StirringForce, SWEParameters,
                                             build_solver, torch_threads)

__all__ = ["EnsembleStirring", "SpectralState", "ensemble_states", "member_stirring_seed",
           "resize_spectrum", "grid_truncation"]


class EnsembleStirring:
    """One :class:`StirringForce` per run, each from its own seed; their tendencies stacked."""

    def __init__(self, solver: ShallowWaterSolver, params: SWEParameters, seeds: Sequence[int]) -> None:
        if params.stirring is None:
            raise InputError("the perfect-model ensemble needs the stirred flow (swe.stirring): the unforced flow is "
                             "deterministic, so every member would be the truth")
        self.forces = [StirringForce(solver, params.stirring, int(seed)) for seed in seeds]

    def tendency(self, uspec: torch.Tensor) -> torch.Tensor:
        """The stirring and the drag of every run, ``(B, 3, L, M)``."""
        extra = torch.zeros_like(uspec)
        drag = self.forces[0].drag
        extra[:, 1] = torch.stack([f.force for f in self.forces]) - drag * uspec[:, 1]
        extra[:, 2] = -drag * uspec[:, 2]
        return extra

    def advance(self) -> None:
        for force in self.forces:
            force.advance()


def grid_truncation(grid: Grid) -> int:
    """The largest ``lmax`` (degrees ``0 .. lmax-1``, ``mmax = lmax``) a grid's transforms resolve."""
    return min(grid.nlat if grid.kind == "legendre-gauss" else grid.nlat - 1, grid.nlon // 2)


def resize_spectrum(uspec: torch.Tensor, lmax: int) -> torch.Tensor:
    """``(..., L, M)`` coefficients truncated or zero-padded to ``(..., lmax, lmax)``."""
    out = uspec.new_zeros(*uspec.shape[:-2], lmax, lmax)
    n = min(lmax, uspec.shape[-2], uspec.shape[-1])
    out[..., :n, :n] = uspec[..., :n, :n]
    return out


class SpectralState:
    r"""Grid fields ``gh`` (m), ``u``, ``v`` (m s-1), ``vo`` (s-1) <-> the solver's spectral state
    :math:`[\Phi, \zeta, \delta]`, truncated at the degrees the grid resolves
    (:func:`grid_truncation`).

    On a grid that resolves every degree of the solver the round trip state -> fields ->
    state is exact up to the fields' precision: the store's states *are* the solver's,
    synthesised on the store's grid.
    """

    def __init__(self, grid: Grid) -> None:
        self.grid, self.lmax = grid, grid_truncation(grid)
        kw = dict(lmax=self.lmax, mmax=self.lmax, grid=grid.kind, csphase=False)
        self.sht, self.isht = th.RealSHT(grid.nlat, grid.nlon, **kw), th.InverseRealSHT(grid.nlat, grid.nlon, **kw)
        self.vsht = th.RealVectorSHT(grid.nlat, grid.nlon, **kw)
        self.ivsht = th.InverseRealVectorSHT(grid.nlat, grid.nlon, **kw)
        l = torch.arange(self.lmax, dtype=torch.float64)[:, None]
        self.lap = -l * (l + 1) / EARTH_RADIUS_M**2                       # (L, 1), s-1 per unit of the harmonic
        self.invlap = torch.where(l > 0, 1.0 / torch.where(l > 0, self.lap, 1.0), 0.0)

    def to_spectral(self, fields: torch.Tensor) -> torch.Tensor:
        """``(B, 4, H, W)`` float64 (gh, u, v, vo) -> ``(B, 3, L, M)`` complex128: the vorticity from
        ``vo``, the divergence from the winds (regridded as a vector field, as the pipeline's
        spectral regridding does: :class:`pipelines.regrid.SpectralRegridder`)."""
        phi = self.sht(GRAVITY * fields[:, 0])
        divergence = (self.lap * EARTH_RADIUS_M * self.vsht(fields[:, 1:3]))[:, 1]
        return torch.tril(torch.stack([phi, self.sht(fields[:, 3]), divergence], dim=1))

    def to_fields(self, uspec: torch.Tensor) -> torch.Tensor:
        """``(B, 3, L, M)`` -> ``(B, 4, H, W)`` float64 (gh, u, v, vo)."""
        uspec = resize_spectrum(uspec, self.lmax)
        gh = self.isht(uspec[:, 0]) / GRAVITY
        uv = self.ivsht(self.invlap * uspec[:, 1:] / EARTH_RADIUS_M)
        return torch.cat([gh[:, None], uv, self.isht(uspec[:, 1])[:, None]], dim=1)


def member_stirring_seed(seed: int, init_hours: int, member: int) -> int:
    """The stirring seed of ``member`` of the init time ``init_hours`` (hours since 1970): apart
    from the truth's stream (another word count) and from every other member's."""
    words = [int(seed) & 0xFFFFFFFF, int(init_hours) & 0xFFFFFFFF, int(member), 0x5EED]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def ensemble_states(params: SWEParameters, start: torch.Tensor, seeds: Sequence[int],
                    lead_hours: Sequence[float], num_threads: int | None = None) -> Iterator[torch.Tensor]:
    """Integrate ``B`` runs from the spectral states ``start`` ``(B, 3, L, M)`` (padded or cut to
    the solver's truncation), run ``b`` stirred from ``seeds[b]``; yield the ``(B, 3, lmax, lmax)``
    states at each of ``lead_hours`` (increasing whole numbers of sub-steps from the start).

    Raises
    ------
    InputError
        If a lead is not a later whole number of sub-steps, or the flow is unforced.
    SimulationError
        If a state becomes non-finite (naming the lead).
    """
    if len(seeds) != start.shape[0]:
        raise InputError(f"{len(seeds)} stirring seeds for {start.shape[0]} runs")
    per_hour = 3600.0 / params.substep_seconds
    with torch_threads(num_threads), torch.inference_mode():
        solver = build_solver(params)
        state = resize_spectrum(start, solver.lmax)
        stepper = AdamsBashforth3(solver, state, EnsembleStirring(solver, params, seeds))
        done = 0
        for lead in lead_hours:
            substeps = lead * per_hour
            if abs(substeps - round(substeps)) > 1e-9 or round(substeps) < done:
                raise InputError(f"lead {lead:g} h is not a later whole number of {params.substep_seconds:g} s "
                                 "sub-steps")
            stepper.step(round(substeps) - done)
            done = round(substeps)
            if not bool(torch.isfinite(torch.view_as_real(stepper.uspec)).all()):
                raise SimulationError(f"the perfect-model ensemble became non-finite by lead {lead:g} h")
            yield stepper.uspec.clone()
