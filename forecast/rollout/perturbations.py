r"""Initial-condition perturbations for ensembles.

Every perturbation maps a batch of normalised states to perturbed states::

    perturbed = perturbation(state, generator)     # (M, C, H, W) -> (M, C, H, W)

``state`` is in normalised units (:math:`(x - \mu_c) / \sigma_c` per variable
:math:`c`), so an amplitude of 0.05 means 5 % of the variable's standard deviation.
All random numbers come from the ``torch.Generator`` that is passed in (a CPU one),
so a seed makes an ensemble bit-reproducible whatever the device.

Implementations
---------------
* :class:`SphericalGaussian`: isotropic Gaussian random fields on the sphere, from
  the Karhunen-Loeve expansion of :class:`torch_harmonics.random_fields.GaussianRandomFieldS2`.
* :class:`DataSpectrum`: random fields with the power spectrum of the data's own
  one-step tendencies (no energy at scales the data do not resolve).
* :class:`BredVector`: breeding (Toth & Kalnay 1993, 1997): a seed perturbation is
  cycled through the model over a spin-up window and rescaled, so that it points
  along the fastest-growing directions of the flow.
* :class:`Compose` applies several in turn (their perturbations add up) and
  :class:`Centred` removes the ensemble mean of the perturbations, so that the
  ensemble mean stays on the analysis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch_harmonics.random_fields import GaussianRandomFieldS2

from pipelines.errors import InputError
from pipelines.grids import EARTH_RADIUS_M, Grid
from pipelines.harmonics import degree_power, inverse_sht, sht

__all__ = ["Perturbation", "SphericalGaussian", "DataSpectrum", "BredVector", "Compose", "Centred", "Identity",
           "weighted_rms", "amplitude_vector", "tendency_spectrum"]


@runtime_checkable
class Perturbation(Protocol):
    """Maps normalised states ``(M, C, H, W)`` to perturbed states of the same shape."""

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...


def amplitude_vector(amplitude: float | dict[str, float], variables: Sequence[str]) -> np.ndarray:
    """Per-variable amplitudes ``(C,)`` (fractions of each variable's std).

    A dict gives one amplitude per variable; variables it leaves out are not perturbed.

    Raises
    ------
    InputError
        If the dict names a variable the model does not have, or an amplitude is negative.
    """
    if isinstance(amplitude, dict):
        unknown = sorted(set(amplitude) - set(variables))
        if unknown:
            raise InputError(f"perturbation amplitude given for unknown variable(s) {', '.join(unknown)}; "
                             f"the model's variables are {', '.join(variables)}")
        values = np.array([float(amplitude.get(v, 0.0)) for v in variables])
    else:
        values = np.full(len(variables), float(amplitude))
    if (values < 0).any() or not np.isfinite(values).all():
        raise InputError(f"perturbation amplitudes must be finite and >= 0, got {values.tolist()}")
    return values


def weighted_rms(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    r"""Area-weighted root mean square over the last two dims.

    Parameters
    ----------
    x
        ``(..., H, W)``.
    weights
        ``(H,)`` latitude weights with mean 1 (:meth:`pipelines.grids.Grid.area_weights`).

    Returns
    -------
    ``(...)``: :math:`\sqrt{\overline{w x^2}}`.
    """
    return torch.sqrt((x.square() * weights[:, None]).mean(dim=(-2, -1)))


def _lat_weights(grid: Grid, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.as_tensor(grid.latitude_weights, dtype=torch.float32, device=device)


class Identity:
    """No perturbation (``kind: none``)."""

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return state


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
        self.weights = _lat_weights(grid)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` unit fields ``(n, H, W)``: area-weighted mean 0, rms 1, float32 on the CPU."""
        shape = (n, *self.sqrt_eig.shape, 2)
        xi = torch.view_as_complex(torch.randn(shape, generator=generator, dtype=torch.float32))
        field = self.isht(xi * self.sqrt_eig).float()
        field = field - (field * self.weights[:, None]).mean(dim=(-2, -1), keepdim=True)
        return field / weighted_rms(field, self.weights)[:, None, None]

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        m, c, h, w = _check_state(state, self.grid, len(self.amplitude))
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
        self.weights = _lat_weights(grid)

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        m, c, h, w = _check_state(state, self.grid, len(self.amplitude))
        shape = (m, *self.sqrt_eig_per_variable.shape, 2)                      # (M, C, L, Mo, 2)
        xi = torch.view_as_complex(torch.randn(shape, generator=generator, dtype=torch.float32))
        field = self.isht(xi * self.sqrt_eig_per_variable).float()           # (M, C, H, W)
        field = field - (field * self.weights[:, None]).mean(dim=(-2, -1), keepdim=True)
        field = field / weighted_rms(field, self.weights)[..., None, None]
        return state + (field * self.amplitude[None, :, None, None]).to(state.device, state.dtype)


class BredVector:
    r"""Bred vectors: seed perturbations grown through the model and rescaled.

    Starting from a seed perturbation :math:`\delta_0` (e.g. :class:`SphericalGaussian`),
    for each of ``cycles`` cycles of ``steps_per_cycle`` model steps ending at the
    initial time,

    .. math:: \delta_{k+1} = \mathrm{rescale}\left( F^n(a_k + \delta_k) - F^n(a_k) \right),

    where :math:`a_k` is the analysis at the start of cycle :math:`k` and :math:`F^n` is
    ``n`` model steps. ``rescale`` sets the area-weighted rms of each member's and
    variable's difference to that variable's amplitude, so the bred perturbation has
    the requested size but the structure of the fastest-growing errors.

    Parameters
    ----------
    advance
        ``advance(states (M, C, H, W), cycle_index) -> states``: ``steps_per_cycle``
        model steps from the start of cycle ``cycle_index`` (the engine knows the times).
    analyses
        ``analyses(cycle_index) -> (C, H, W)`` normalised analysis at the start of the
        cycle; the engine falls back to the initial state when earlier analyses are
        missing.
    seed
        The seed perturbation.
    amplitude
        ``(C,)`` target rms per variable (normalised units).
    grid, cycles
        Model grid and number of breeding cycles (>= 1).
    """

    def __init__(self, advance: Callable[[torch.Tensor, int], torch.Tensor],
                 analyses: Callable[[int], torch.Tensor], seed: Perturbation, amplitude: np.ndarray,
                 grid: Grid, cycles: int):
        if cycles < 1:
            raise InputError(f"perturbation bred_cycles must be >= 1, got {cycles}")
        self.advance, self.analyses, self.seed = advance, analyses, seed
        self.amplitude = torch.as_tensor(np.asarray(amplitude, dtype=np.float32))
        self.grid, self.cycles = grid, cycles
        self.weights = _lat_weights(grid)

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        m, c, _, _ = _check_state(state, self.grid, len(self.amplitude))
        delta = None
        for k in range(self.cycles):
            analysis = self.analyses(k).to(state.device, state.dtype).expand(m, -1, -1, -1)
            if delta is None:
                delta = self.seed(analysis, generator) - analysis
            control = self.advance(analysis, k)   # per member: members may use different models
            grown = self.advance(analysis + delta, k) - control
            delta = self._rescale(grown)
        return state + delta

    def _rescale(self, diff: torch.Tensor) -> torch.Tensor:
        rms = weighted_rms(diff, self.weights.to(diff.device))
        target = self.amplitude.to(diff.device)[None, :]
        scale = torch.where(rms > 0, target / rms.clamp_min(1e-30), torch.zeros_like(rms))
        return diff * scale[..., None, None]


class Compose:
    """Apply perturbations in turn; their perturbations add up."""

    def __init__(self, parts: Sequence[Perturbation]):
        self.parts = list(parts)

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = state
        for part in self.parts:
            out = part(out, generator)
        return out


class Centred:
    r"""Remove the ensemble mean of ``inner``'s perturbations.

    :math:`x'_m = x_m + \delta_m - \frac{1}{M}\sum_n \delta_n`, so the ensemble mean equals
    the unperturbed state (exactly up to float32 rounding). A single member is left
    unperturbed.
    """

    def __init__(self, inner: Perturbation):
        self.inner = inner

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        delta = self.inner(state, generator) - state
        return state + (delta - delta.mean(dim=0, keepdim=True))


def _check_state(state: torch.Tensor, grid: Grid, n_vars: int) -> tuple[int, int, int, int]:
    if state.ndim != 4 or tuple(state.shape[1:]) != (n_vars, grid.nlat, grid.nlon):
        raise ValueError(f"expected a state (member, {n_vars}, {grid.nlat}, {grid.nlon}), got {tuple(state.shape)}")
    m, c, h, w = state.shape
    return m, c, h, w

