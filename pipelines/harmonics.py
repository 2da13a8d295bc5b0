r"""Spherical harmonics on a :class:`~pipelines.grids.Grid`: transforms, power per degree, degree bands.

Every spherical-harmonic transform of the project is built here, from torch-harmonics'
:class:`~torch_harmonics.RealSHT` family, so that the truncation of a grid is chosen in one place.

Truncation
----------
A transform keeps degrees :math:`0 \le l < l_{max}` and orders :math:`0 \le m < m_{max}`
(:func:`truncation`). By default :math:`l_{max} = n_{lat}`, every degree the grid's latitudes
can hold (torch-harmonics' own default on both grid kinds), and
:math:`m_{max} = \min(l_{max}, n_{lon}/2 + 1)`: no order above the degree (:math:`Y_l^m = 0`
for :math:`m > l`) and none above the Nyquist order of the longitudes. The degrees a grid's
quadrature resolves *exactly* for band-limited fields are fewer on equiangular grids
(:func:`exact_lmax`).

Normalisation and power
-----------------------
With ``norm="ortho"`` (the default here, as in torch-harmonics) the harmonics are orthonormal,
:math:`\int_{S^2} Y_{lm} Y^*_{l'm'} \, d\Omega = \delta_{ll'}\delta_{mm'}`, and the real
transform stores :math:`a_{lm}` for :math:`m \ge 0` only (:math:`a_{l,-m} = (-1)^m a^*_{lm}`).
The power per degree (:func:`degree_power`) is

.. math:: P(l) = |a_{l0}|^2 + 2 \sum_{m=1}^{l} |a_{lm}|^2 ,

in units of the field squared times steradian, and Parseval's identity (exact for
band-limited fields on a Legendre-Gauss grid) reads

.. math:: \sum_l P(l) = \int_{S^2} f^2 \, d\Omega = 4\pi \, \langle f^2 \rangle ,

with :math:`\langle \cdot \rangle` the area-weighted mean (:meth:`Grid.area_weights`).

Reference: Schaeffer N. (2013), "Efficient spherical harmonic transforms aimed at
pseudospectral numerical simulations", G3, 14(3), 751-758.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch_harmonics import InverseRealSHT, InverseRealVectorSHT, RealSHT, RealVectorSHT

from pipelines.grids import Grid

__all__ = ["degree_bands", "degree_power", "exact_lmax", "inverse_sht", "inverse_vector_sht", "order_multiplicity",
           "sht", "truncation", "vector_sht"]


def exact_lmax(grid: Grid) -> int:
    r"""Degrees (exclusive) a grid's quadrature resolves exactly for band-limited fields:
    :math:`n_{lat}` on Legendre-Gauss grids (exact to degree :math:`2 n_{lat} - 1`),
    :math:`\lceil n_{lat}/2 \rceil` on equiangular ones (Clenshaw-Curtis, exact to :math:`n_{lat} - 1`)."""
    return grid.nlat if grid.kind == "legendre-gauss" else math.ceil(grid.nlat / 2)


def truncation(grid: Grid, lmax: int | None = None, mmax: int | None = None) -> tuple[int, int]:
    r"""``(lmax, mmax)`` of a transform on ``grid`` (module docstring): ``lmax`` defaults to
    :math:`n_{lat}`, ``mmax`` to :math:`\min(l_{max}, n_{lon}/2 + 1)`."""
    lmax = grid.nlat if lmax is None else int(lmax)
    return lmax, min(lmax, grid.nlon // 2 + 1) if mmax is None else int(mmax)


def sht(grid: Grid, lmax: int | None = None, mmax: int | None = None, norm: str = "ortho") -> RealSHT:
    """Forward transform ``(..., nlat, nlon)`` -> complex ``(..., lmax, mmax)`` (float32 tables)."""
    lmax, mmax = truncation(grid, lmax, mmax)
    return RealSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=mmax, grid=grid.kind, norm=norm)


def inverse_sht(grid: Grid, lmax: int | None = None, mmax: int | None = None, norm: str = "ortho") -> InverseRealSHT:
    """Inverse transform complex ``(..., lmax, mmax)`` -> ``(..., nlat, nlon)``."""
    lmax, mmax = truncation(grid, lmax, mmax)
    return InverseRealSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=mmax, grid=grid.kind, norm=norm)


def vector_sht(grid: Grid, lmax: int | None = None, mmax: int | None = None) -> RealVectorSHT:
    """Vector transform ``(..., 2, nlat, nlon)`` (colatitude, longitude components) ->
    complex ``(..., 2, lmax, mmax)`` (spheroidal and toroidal coefficients)."""
    lmax, mmax = truncation(grid, lmax, mmax)
    return RealVectorSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=mmax, grid=grid.kind)


def inverse_vector_sht(grid: Grid, lmax: int | None = None, mmax: int | None = None) -> InverseRealVectorSHT:
    """Inverse of :func:`vector_sht`."""
    lmax, mmax = truncation(grid, lmax, mmax)
    return InverseRealVectorSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=mmax, grid=grid.kind)


def order_multiplicity(lmax: int, mmax: int) -> np.ndarray:
    r"""``(lmax, mmax)`` weights :math:`g_{lm}` of the real coefficients in sums over
    :math:`-l \le m \le l`: 1 for :math:`m = 0`, 2 for :math:`0 < m \le l` (the coefficient
    stands for :math:`\pm m`), 0 for :math:`m > l` (no such harmonic)."""
    degree, order = np.meshgrid(np.arange(lmax), np.arange(mmax), indexing="ij")
    return np.where(degree >= order, np.where(order > 0, 2.0, 1.0), 0.0)


def degree_power(coeffs: torch.Tensor) -> torch.Tensor:
    r"""Power per degree :math:`P(l) = |a_{l0}|^2 + 2 \sum_{m>0} |a_{lm}|^2` of real-SHT
    coefficients ``(..., L, M)`` -> ``(..., L)``; with orthonormal coefficients it sums over
    :math:`l` to :math:`\int_{S^2} f^2 \, d\Omega` (module docstring)."""
    power = coeffs.abs().square()
    power[..., 1:] *= 2.0
    return power.sum(-1)


def degree_bands(power: np.ndarray, parts: int = 3, threshold: float = 1e-8) -> list[tuple[int, int]]:
    r"""Equal bands ``[(first, last), ...]`` of the degrees :math:`1 \le l \le l_r` a spectrum
    ``(L,)`` resolves, :math:`l_r` the last degree with power above ``threshold`` times the peak
    (a spectral solver's truncation leaves nothing above it; data regridded from a finer grid
    resolve every degree). Low to high: large scales to the smallest."""
    values = np.asarray(power, dtype=np.float64)
    above = np.flatnonzero(values[1:] > threshold * np.nanmax(values[1:])) + 1
    if above.size == 0:
        return []
    resolved = int(above[-1])
    parts = max(1, min(parts, resolved))
    edges = np.linspace(1, resolved + 1, parts + 1).round().astype(int)
    return [(int(a), int(b) - 1) for a, b in zip(edges[:-1], edges[1:])]
