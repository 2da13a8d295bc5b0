r"""Time stepping of the shallow-water equations: the tendency of :class:`~torch_harmonics.examples.ShallowWaterSolver`,
batched and written as one real matrix product per transform.

The solver's ``dudtspec`` transforms one state at a time with per-part ``einsum`` calls;
on the small grids of the embedded data it spends most of its time copying. This computes
the same tendency,

.. math::

    \partial_t \hat\zeta = -\widehat{\nabla\cdot(q\mathbf u)}, \quad
    \partial_t \hat\delta = \widehat{\mathbf k\cdot\nabla\times(q\mathbf u)}
        + \frac{l(l+1)}{a^2}\,\widehat{\big(\Phi + \tfrac12|\mathbf u|^2\big)}, \quad
    \partial_t \hat\Phi = -\widehat{\nabla\cdot(\Phi\mathbf u)}, \qquad q = \zeta + f,

for a batch ``(B, 3, L, M)`` of states, from the solver's own Legendre tables (so the maths
is the solver's to rounding). Each transform is one ``bmm`` over the order :math:`m`:

* scalar synthesis :math:`g_m(\theta_k) = \sum_l P_{lm}(\theta_k)\,\hat g_{lm}`, then an inverse real FFT;
* scalar analysis :math:`\hat g_{lm} = 2\pi \sum_k w_k P_{lm}(\theta_k)\, \mathrm{DFT}_m(g_k)`;
* vector synthesis from spheroidal/toroidal coefficients :math:`(s, t)` with the tables
  :math:`D^0 = \partial_\theta P`, :math:`D^1 = m P / \sin\theta`:
  :math:`u_m = D^0 s + i D^1 t`, :math:`v_m = i D^1 s - D^0 t`;
* vector analysis, the adjoint pattern with quadrature weights:
  :math:`s = W^0 u + i W^1 v`, :math:`t = i W^1 u - W^0 v`.

Reference: Schaeffer N. (2013), "Efficient spherical harmonic transforms aimed at
pseudospectral numerical simulations", G3 14, 751-758.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch_harmonics.examples import ShallowWaterSolver

__all__ = ["BatchedTendency", "AdamsBashforth3", "Forcing"]


class Forcing(Protocol):
    """A forcing added to the equations' tendency, advanced once per sub-step."""

    def tendency(self, uspec: torch.Tensor) -> torch.Tensor: ...
    def advance(self) -> None: ...


def _contract(table: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``table (M, A, K)`` applied along ``K`` of complex ``x (N, K, M)`` for each ``m`` -> ``(N, A, M)``."""
    n, k, m = x.shape
    real = torch.view_as_real(x).permute(2, 1, 0, 3).reshape(m, k, n * 2)
    out = torch.bmm(table, real).view(m, table.shape[1], n, 2).permute(2, 1, 0, 3)
    return torch.view_as_complex(out.contiguous())


class BatchedTendency:
    """``uspec (B, 3, L, M)`` complex128 -> its tendency ``(B, 3, L, M)``, as ``solver.dudtspec``
    computes for one state (without the solver's stirring or drag)."""

    def __init__(self, solver: ShallowWaterSolver) -> None:
        self.solver = solver
        self.nlon, self.lmax, self.mmax = solver.nlon, solver.lmax, solver.mmax
        self.inverse = solver.isht.pct.permute(0, 2, 1).contiguous()                 # (M, H, L)
        self.forward_table = (solver.sht.weights * (2.0 * math.pi)).contiguous()     # (M, L, H)
        dpct = solver.ivsht.dpct                                                     # (2, M, L, H)
        self.vector_inverse = torch.cat([dpct[0].permute(0, 2, 1), dpct[1].permute(0, 2, 1)], dim=1).contiguous()  # (M, 2H, L)
        weights = solver.vsht.weights * (2.0 * math.pi)                              # (2, M, L, H)
        self.vector_forward = torch.cat([weights[0], weights[1]], dim=1).contiguous()  # (M, 2L, H)

    # -- transforms on (N, ., .) batches ---------------------------------------------------
    def synthesis(self, coeffs: torch.Tensor) -> torch.Tensor:
        """``(N, L, M)`` -> ``(N, H, W)``."""
        spec = _contract(self.inverse, coeffs)
        spec[..., 0].imag.zero_()   # m = 0 has no imaginary part (as the solver sets it)
        return torch.fft.irfft(spec, n=self.nlon, dim=-1, norm="forward")

    def analysis(self, fields: torch.Tensor) -> torch.Tensor:
        """``(N, H, W)`` -> ``(N, L, M)``."""
        spec = torch.fft.rfft(fields, dim=-1, norm="forward")[..., : self.mmax]
        return _contract(self.forward_table, spec)

    def vector_synthesis(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Spheroidal/toroidal ``(N, 2, L, M)`` -> ``(N, 2, H, W)`` (the solver's ``ivsht``)."""
        n, h = coeffs.shape[0], self.inverse.shape[1]
        out = _contract(self.vector_inverse, coeffs.reshape(n * 2, self.lmax, self.mmax)).view(n, 2, 2, h, self.mmax)
        d0, d1 = out[:, :, 0], out[:, :, 1]                    # (N, {s, t}, H, M)
        u = d0[:, 0] + 1j * d1[:, 1]
        v = 1j * d1[:, 0] - d0[:, 1]
        spec = torch.stack([u, v], dim=1)
        spec[..., 0].imag.zero_()   # m = 0 has no imaginary part (as the solver sets it)
        return torch.fft.irfft(spec, n=self.nlon, dim=-1, norm="forward")

    def vector_analysis(self, fields: torch.Tensor) -> torch.Tensor:
        """``(N, 2, H, W)`` -> spheroidal/toroidal ``(N, 2, L, M)`` (the solver's ``vsht``)."""
        n, _, h, _ = fields.shape
        spec = torch.fft.rfft(fields, dim=-1, norm="forward")[..., : self.mmax].reshape(n * 2, h, self.mmax)
        out = _contract(self.vector_forward, spec).view(n, 2, 2, self.lmax, self.mmax)
        w0, w1 = out[:, :, 0], out[:, :, 1]                    # (N, {u, v}, L, M)
        return torch.stack([w0[:, 0] + 1j * w1[:, 1], 1j * w1[:, 0] - w0[:, 1]], dim=1)

    # -- the equations -------------------------------------------------------------------
    def __call__(self, uspec: torch.Tensor) -> torch.Tensor:
        s = self.solver
        b = uspec.shape[0]
        # the divergence's grid field does not enter the tendency: synthesise Phi and zeta only
        ugrid = self.synthesis(uspec[:, :2].reshape(b * 2, self.lmax, self.mmax)).view(b, 2, s.nlat, self.nlon)
        uv = self.vector_synthesis(s.invlap * uspec[:, 1:] / s.radius)                 # (B, 2, H, W)
        q = ugrid[:, 1:2] + s.coriolis
        fluxes = torch.cat([uv * q, uv * ugrid[:, 0:1]], dim=0)                       # (2B, 2, H, W)
        vortdiv = s.lap * s.radius * self.vector_analysis(fluxes)                    # (2B, 2, L, M)
        bernoulli = self.analysis(ugrid[:, 0] + 0.5 * (uv[:, 0] ** 2 + uv[:, 1] ** 2))
        tendency = torch.empty_like(uspec)
        tendency[:, 0] = -vortdiv[b:, 1]
        tendency[:, 1] = -vortdiv[:b, 1]
        tendency[:, 2] = vortdiv[:b, 0] - s.lap * bernoulli
        return tendency


class AdamsBashforth3:
    """Third-order Adams-Bashforth stepping of a :class:`ShallowWaterSolver` state.

    Unlike ``ShallowWaterSolver.timestep``, which restarts with forward Euler at every
    call, the tendency history is kept between calls, so the trajectory does not depend
    on how often it is sampled. Start-up: forward Euler, then AB2, then AB3. With
    ``stirring`` its tendency is added to the solver's, and it advances every sub-step.
    ``uspec`` is one state ``(3, L, M)`` or a batch ``(B, 3, L, M)`` (with a stirring that
    knows the batch, :class:`pipelines.sources.swe_ensemble.EnsembleStirring`); the
    equations' tendency is :class:`BatchedTendency`.
    """

    _COEFFS = ((1.0,), (1.5, -0.5), (23.0 / 12.0, -16.0 / 12.0, 5.0 / 12.0))

    def __init__(self, solver: ShallowWaterSolver, uspec: torch.Tensor, stirring: Forcing | None = None) -> None:
        self.solver = solver
        self.dynamics = BatchedTendency(solver)
        self.uspec = uspec
        self.stirring = stirring
        self.history: list[torch.Tensor] = []  # newest first

    def tendency(self, uspec: torch.Tensor) -> torch.Tensor:
        """The equations' tendency plus the stirring's, for one state or a batch."""
        tendency = self.dynamics(uspec) if uspec.dim() == 4 else self.dynamics(uspec[None])[0]
        if self.stirring is not None:
            tendency = tendency + self.stirring.tendency(uspec)
            self.stirring.advance()
        return tendency

    def step(self, n: int) -> torch.Tensor:
        """Advance ``n`` sub-steps of ``solver.dt`` seconds; return the spectral state."""
        solver = self.solver
        for _ in range(n):
            self.history = [self.tendency(self.uspec), *self.history[:2]]
            coeffs = self._COEFFS[len(self.history) - 1]
            tendency = sum(c * d for c, d in zip(coeffs, self.history))
            self.uspec = self.uspec + solver.dt * tendency
            # implicit hyperdiffusion of vorticity and divergence (of every run of a batch)
            self.uspec[..., 1:, :, :] = solver.hyperdiff * self.uspec[..., 1:, :, :]
        return self.uspec
