"""Random-field perturbations: :class:`SphericalGaussian` (isotropic, a length scale) and
:class:`DataSpectrum` (the spectrum of the data's own one-step tendencies)."""

from __future__ import annotations

import numpy as np
import torch
from torch_harmonics.random_fields import GaussianRandomFieldS2

from forecast.rollout.perturbations.base import check_state, lat_weights, weighted_rms
from pipelines.errors import InputError
from pipelines.grids import EARTH_RADIUS_M, Grid
from pipelines.harmonics import degree_power, inverse_sht, sht

__all__ = ["SphericalGaussian", "DataSpectrum", "tendency_spectrum"]


class SphericalGaussian:
    r"""Isotropic Gaussian random fields on the sphere, one per member and variable.

    The field is the Karhunen-Loeve expansion of
    :class:`torch_harmonics.random_fields.GaussianRandomFieldS2`,

    .. math:: u(\theta, \phi) = \sum_{l,m} \xi_{lm} \, \sqrt{\lambda_l} \, Y_l^m(\theta, \phi),
              \qquad \sqrt{\lambda_l} \propto \left(l (l + 1) + \tau^2\right)^{-\alpha/2},

    with complex standard normal :math:`\xi_{lm}` drawn from the caller's generator, and
    :math:`\lambda_0 = 0` (no global-mean offset). With :math:`\alpha = 2` this is a
    Matern-like field whose correlation length on the unit sphere is :math:`1/\tau`; on the
    Earth :math:`\tau = R / L` for a length scale :math:`L` (km). A larger :math:`L` puts
    the variance at lower total wavenumbers :math:`l` (its spectrum peaks near
    :math:`l \approx \tau/\sqrt{3}`).

    Each sampled field is rescaled to area-weighted mean 0 and rms 1, then multiplied by
    the variable's amplitude, so the perturbation of variable ``c`` has an area-weighted
    standard deviation of exactly ``amplitude[c]`` (normalised units).

    Parameters
    ----------
    grid
        The model grid (``H, W = grid.nlat, grid.nlon``).
    amplitude
        ``(C,)`` amplitudes in units of each variable's standard deviation.
    length_scale_km
        Correlation length :math:`L` in km (should exceed the grid spacing).
    alpha
        Spectral exponent (smoothness), 2 by default.
    """

    def __init__(self, grid: Grid, amplitude: np.ndarray, length_scale_km: float, alpha: float = 2.0):
        if length_scale_km <= 0:
            raise InputError(f"perturbation length_scale_km must be > 0, got {length_scale_km}")
        self.grid = grid
        self.amplitude = torch.as_tensor(np.asarray(amplitude, dtype=np.float32))
        self.tau = EARTH_RADIUS_M / 1e3 / length_scale_km
        lmax = grid.nlat
        # one order more than the degrees (its harmonics vanish): the seeded draws depend on the shape
        self.mmax = min(lmax + 1, grid.nlon // 2 + 1)
        spectrum = GaussianRandomFieldS2(grid.nlat, alpha=alpha, tau=self.tau, grid=grid.kind).sqrt_eig
        self.sqrt_eig = spectrum[0, :lmax, : self.mmax].clone()      # (L, M) real
        self.isht = inverse_sht(grid, lmax, self.mmax, norm="backward")
        self.weights = lat_weights(grid)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` unit fields ``(n, H, W)``: area-weighted mean 0, rms 1, float32 on the CPU."""
        shape = (n, *self.sqrt_eig.shape, 2)
        xi = torch.view_as_complex(torch.randn(shape, generator=generator, dtype=torch.float32))
        field = self.isht(xi * self.sqrt_eig).float()
        field = field - (field * self.weights[:, None]).mean(dim=(-2, -1), keepdim=True)
        return field / weighted_rms(field, self.weights)[:, None, None]

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        m, c, h, w = check_state(state, self.grid, len(self.amplitude))
        noise = self.sample(m * c, generator).reshape(m, c, h, w) * self.amplitude[None, :, None, None]
        return state + noise.to(state.device, state.dtype)


def tendency_spectrum(pairs: torch.Tensor, grid: Grid) -> torch.Tensor:
    r"""Mean power per total wavenumber of normalised tendencies, ``(C, L)``.

    ``pairs`` ``(N, 2, C, H, W)`` holds N (state, next state) pairs one model step apart;
    the power of :math:`\delta = x_{t+\Delta t} - x_t` at degree :math:`l` is
    :math:`\sum_m |\hat\delta_{lm}|^2` (orthonormal real SHT, :math:`m > 0` counted twice),
    averaged over the pairs.
    """
    delta = (pairs[:, 1] - pairs[:, 0]).double()
    return degree_power(sht(grid)(delta)).mean(0).float()               # (N, C, L) -> (C, L)


class DataSpectrum:
    r"""Random fields with the data's own spectrum: per variable :math:`c`,

    .. math:: u_c = \sum_{l,m} \xi_{lm} \sqrt{P_c(l) / (2l + 1)}\, Y_l^m ,

    with :math:`P_c(l)` the power per degree of the normalised one-step tendencies of the
    initial conditions (:func:`tendency_spectrum`), so the perturbations put energy only
    where the data's own changes have it, and none at degrees the data do not resolve. As
    :class:`SphericalGaussian`, each field is rescaled to area-weighted mean 0 and rms 1,
    then multiplied by the variable's amplitude.

    Parameters
    ----------
    grid
        The model grid.
    amplitude
        ``(C,)`` amplitudes in units of each variable's standard deviation.
    spectrum
        ``(C, L)`` power per degree, ``L <= grid.nlat``.
    """

    def __init__(self, grid: Grid, amplitude: np.ndarray, spectrum: torch.Tensor):
        self.grid = grid
        self.amplitude = torch.as_tensor(np.asarray(amplitude, dtype=np.float32))
        spectrum = torch.as_tensor(spectrum, dtype=torch.float32).clamp(min=0.0)
        if spectrum.dim() != 2 or spectrum.shape[0] != len(self.amplitude):
            raise InputError(f"data spectrum has shape {tuple(spectrum.shape)}; expected ({len(self.amplitude)}, L)")
        self.isht = inverse_sht(grid, lmax=spectrum.shape[1])
        lmax, self.mmax = self.isht.lmax, self.isht.mmax
        l = torch.arange(lmax, dtype=torch.float32)
        per_coefficient = spectrum / (2.0 * l + 1.0)
        per_coefficient[:, 0] = 0.0                                           # no global-mean offset
        self.sqrt_eig_per_variable = per_coefficient.sqrt()[:, :, None].expand(-1, -1, self.mmax).clone()
        self.weights = lat_weights(grid)

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        m, c, h, w = check_state(state, self.grid, len(self.amplitude))
        shape = (m, *self.sqrt_eig_per_variable.shape, 2)                      # (M, C, L, Mo, 2)
        xi = torch.view_as_complex(torch.randn(shape, generator=generator, dtype=torch.float32))
        field = self.isht(xi * self.sqrt_eig_per_variable).float()           # (M, C, H, W)
        field = field - (field * self.weights[:, None]).mean(dim=(-2, -1), keepdim=True)
        field = field / weighted_rms(field, self.weights)[..., None, None]
        return state + (field * self.amplitude[None, :, None, None]).to(state.device, state.dtype)
