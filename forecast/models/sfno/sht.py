r"""The SFNO's fast spherical-harmonic transforms of channels-last fields, with their own autograd.

The same transforms as :class:`torch_harmonics.RealSHT` / :class:`torch_harmonics.InverseRealSHT`
(orthonormal, Condon-Shortley phase; the Legendre tables come from them, built by
:mod:`pipelines.harmonics`), laid out for the SFNO's channel mixing. For a field
:math:`u_{jk}` at colatitudes :math:`\theta_j` (quadrature weights :math:`w_j`) and
longitudes :math:`\lambda_k = 2\pi k/n`,

.. math:: \hat u_{lm} = \sum_j w_j \, P_l^m(\cos\theta_j) \, 2\pi \, U_{jm}, \qquad
          U_{jm} = \frac{1}{n}\sum_k u_{jk}\, e^{-i m \lambda_k} \quad (m < M),

.. math:: u_{jk} = \sum_{m < M} c_m\, \mathrm{Re}\Big[\Big(\sum_l P_l^m(\cos\theta_j)\, \hat u_{lm}\Big)
          e^{i m \lambda_k}\Big], \qquad c_0 = 1,\; c_{m>0} = 2 ,

the imaginary part of :math:`m = 0` being dropped (it has no real field). The Legendre
sums are real batched matrix products over :math:`m`, real and imaginary parts and all
channels in one GEMM per order; the Fourier parts are truncated FFTs.

Autograd: the truncated FFTs have hand-written adjoints, each one FFT of the other kind
(half the work of torch's generic backward of ``rfft``, a full complex FFT). With the
gradient :math:`\bar U_m` of the real view :math:`(\mathrm{Re}\,U_m, \mathrm{Im}\,U_m)`,

.. math:: \bar u = \mathrm{irfft}(\bar U \cdot a)/n, \quad a_0 = (1, 0),\; a_{m>0} = \tfrac12;
          \qquad \bar{\hat X} = \mathrm{rfft}(\bar y)_{m<M} \cdot b, \quad b_0 = (1, 0),\; b_{m>0} = 2,

for the forward and inverse transform respectively (``irfft`` and ``rfft`` unnormalised).

Shapes: forward ``(B, nlat, nlon, C)`` -> ``(M, L, B, 2, C)`` (order-major, real and imaginary
parts before the channels), inverse the reverse.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn as nn

from pipelines import harmonics
from pipelines.grids import Grid

__all__ = ["ChannelsLastRealSHT", "ChannelsLastInverseRealSHT"]


@lru_cache(maxsize=32)
def _legendre_tables(nlat: int, nlon: int, lmax: int, mmax: int, grid: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward ``(M, L, H)`` (quadrature weights and the 2 pi of the longitude integral folded
    in) and inverse ``(M, H, L)`` tables from torch-harmonics, cached per transform size."""
    on = Grid(grid, nlat, nlon)  # type: ignore[arg-type]
    forward = harmonics.sht(on, lmax, mmax).weights * (2.0 * math.pi)
    inverse = harmonics.inverse_sht(on, lmax, mmax).pct.transpose(1, 2)
    return forward.contiguous(), inverse.contiguous()


def _order_factors(mmax: int, value: float, like: torch.Tensor) -> torch.Tensor:
    """``(M, 1, 2)`` factors: ``(1, 0)`` for ``m = 0`` (real part only), ``(value, value)`` above."""
    f = torch.full((mmax, 1, 2), value, dtype=like.dtype, device=like.device)
    f[0, 0, 0], f[0, 0, 1] = 1.0, 0.0
    return f


class _TruncatedRFFT(torch.autograd.Function):
    r"""First ``mmax`` coefficients of ``rfft(x, dim=2, norm="forward")`` as a real view
    ``(B, H, M, C, 2)``; backward: :math:`\bar x = \mathrm{irfft}(\bar X \cdot a)/n` (module docstring)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mmax: int) -> torch.Tensor:  # type: ignore[override]
        ctx.n, ctx.mmax = x.shape[2], mmax
        return torch.view_as_real(torch.fft.rfft(x, dim=2, norm="forward")[:, :, :mmax])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        grad = (grad * _order_factors(ctx.mmax, 0.5, grad)).contiguous()
        return torch.fft.irfft(torch.view_as_complex(grad), n=ctx.n, dim=2, norm="backward"), None


class _TruncatedIRFFT(torch.autograd.Function):
    r"""``irfft(X, n, dim=2, norm="forward")`` of ``mmax <= n/2`` coefficients given as a real view
    ``(B, H, M, C, 2)``, the imaginary part of :math:`m = 0` ignored on every backend; backward:
    :math:`\bar X = \mathrm{rfft}(\bar y)_{m<M} \cdot b` (module docstring)."""

    @staticmethod
    def forward(ctx, coeffs: torch.Tensor, n: int) -> torch.Tensor:  # type: ignore[override]
        ctx.mmax = coeffs.shape[2]
        coeffs = (coeffs * _order_factors(ctx.mmax, 1.0, coeffs)).contiguous()
        return torch.fft.irfft(torch.view_as_complex(coeffs), n=n, dim=2, norm="forward")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        spec = torch.view_as_real(torch.fft.rfft(grad, dim=2, norm="backward")[:, :, : ctx.mmax])
        return spec * _order_factors(ctx.mmax, 2.0, spec), None


class ChannelsLastRealSHT(nn.Module):
    r"""Forward transform (module docstring) ``(B, nlat, nlon, C)`` -> ``(M, L, B, 2, C)``, as
    :class:`torch_harmonics.RealSHT` with ``lmax``, ``mmax`` on the ``grid`` kind."""

    weights: torch.Tensor

    def __init__(self, nlat: int, nlon: int, lmax: int, mmax: int, grid: str) -> None:
        super().__init__()
        self.nlat, self.nlon, self.lmax, self.mmax, self.grid = nlat, nlon, lmax, mmax, grid
        table = _legendre_tables(nlat, nlon, lmax, mmax, grid)[0]
        self.register_buffer("weights", table.float(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, _, c = x.shape
        coeffs = _TruncatedRFFT.apply(x, self.mmax)                        # (B, H, M, C, 2)
        # -> (M, H, B*2*C): one GEMM per order m contracts latitude
        a = coeffs.permute(2, 1, 0, 4, 3).reshape(self.mmax, h, b * 2 * c)
        return torch.bmm(self.weights, a).view(self.mmax, self.lmax, b, 2, c)

    def extra_repr(self) -> str:
        return f"{self.grid}:{self.nlat}x{self.nlon}, lmax={self.lmax}, mmax={self.mmax}"


class ChannelsLastInverseRealSHT(nn.Module):
    r"""Inverse transform (module docstring) ``(M, L, B, 2, C)`` -> ``(B, nlat, nlon, C)``, as
    :class:`torch_harmonics.InverseRealSHT`; the imaginary part of :math:`m = 0` is dropped,
    identically on every FFT backend."""

    pct: torch.Tensor

    def __init__(self, nlat: int, nlon: int, lmax: int, mmax: int, grid: str) -> None:
        super().__init__()
        if mmax > nlon // 2:
            raise ValueError(f"mmax={mmax} must not exceed nlon // 2 = {nlon // 2}")
        self.nlat, self.nlon, self.lmax, self.mmax, self.grid = nlat, nlon, lmax, mmax, grid
        table = _legendre_tables(nlat, nlon, lmax, mmax, grid)[1]
        self.register_buffer("pct", table.float(), persistent=False)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        m, l, b, _, c = s.shape
        y = torch.bmm(self.pct, s.reshape(m, l, b * 2 * c)).view(m, self.nlat, b, 2, c)
        return _TruncatedIRFFT.apply(y.permute(2, 1, 0, 4, 3), self.nlon)

    def extra_repr(self) -> str:
        return f"{self.grid}:{self.nlat}x{self.nlon}, lmax={self.lmax}, mmax={self.mmax}"
