r"""Grid-free position encoding of the SFNO: real spherical harmonics, optionally through a SIREN.

Russwurm et al. encode a location :math:`(\theta, \lambda)` (colatitude, longitude) by the
real spherical harmonics up to a degree :math:`L`,

.. math:: \mathrm{PE}(\theta, \lambda) = \big(Y_{l,m}(\theta, \lambda)\big)_{0 \le l \le L,\; -l \le m \le l}
          \in \mathbb{R}^{(L+1)^2},

and map them to the features with a linear layer or a small sinusoidal representation network
(SIREN, Sitzmann et al. 2020). Real harmonics here, from the orthonormal complex ones
:math:`Y_l^m = N_{lm} P_l^m(\cos\theta) e^{i m \lambda}` with the Condon-Shortley phase in
:math:`P_l^m` (scipy's ``sph_harm_y`` convention):

.. math:: Y_{l,m} = \sqrt2\, \mathrm{Re}\, Y_l^m \;(m > 0), \qquad Y_{l,0} = Y_l^0, \qquad
          Y_{l,-m} = \sqrt2\, \mathrm{Im}\, Y_l^m \;(m > 0),

orthonormal on the unit sphere (:math:`\int Y_{l,m} Y_{l',m'} d\Omega = \delta_{ll'}\delta_{mm'}`).
The features are in the order ``l = 0..L``, and within a degree ``m = -l..l``.

Unlike a learned tensor the size of the training grid, the encoding is a function on the
sphere: :meth:`SphericalHarmonicEncoding.set_grid` evaluates it on any grid, so a model
trained on one grid runs on another.

References: Russwurm M. et al. (2024), "Geographic Location Encoding with Spherical Harmonics
and Sinusoidal Representation Networks", ICLR, https://arxiv.org/abs/2310.06743;
Sitzmann V. et al. (2020), "Implicit Neural Representations with Periodic Activation
Functions", NeurIPS.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from pipelines.grids import Grid

__all__ = ["real_spherical_harmonics", "SphericalHarmonicEncoding", "Siren"]


def real_spherical_harmonics(colat: torch.Tensor, lon: torch.Tensor, degree: int) -> torch.Tensor:
    r"""Real orthonormal spherical harmonics (module docstring) up to ``degree`` :math:`L` at
    points ``colat`` :math:`\theta \in [0, \pi]`, ``lon`` :math:`\lambda` (radians, same shape
    ``S``) -> ``S + ((L+1)^2,)``, in the dtype of ``colat``.

    The fully normalised associated Legendre functions come from the stable recurrences
    :math:`\bar P_{mm} = -\sqrt{(2m+1)/(2m)}\,\sin\theta\,\bar P_{m-1,m-1}`,
    :math:`\bar P_{m+1,m} = \sqrt{2m+3}\,\cos\theta\,\bar P_{mm}` and
    :math:`\bar P_{lm} = a_{lm}(\cos\theta\,\bar P_{l-1,m} - \bar P_{l-2,m}/a_{l-1,m})`,
    :math:`a_{lm} = \sqrt{(4l^2-1)/(l^2-m^2)}`, from :math:`\bar P_{00} = 1/\sqrt{4\pi}`.
    """
    if degree < 0:
        raise ValueError(f"degree must be >= 0, got {degree}")
    x, s = torch.cos(colat), torch.sin(colat)
    p: dict[tuple[int, int], torch.Tensor] = {(0, 0): torch.full_like(x, 1.0 / math.sqrt(4.0 * math.pi))}
    for m in range(1, degree + 1):
        p[m, m] = -math.sqrt((2 * m + 1) / (2 * m)) * s * p[m - 1, m - 1]
    for m in range(0, degree):
        p[m + 1, m] = math.sqrt(2 * m + 3) * x * p[m, m]
        for l in range(m + 2, degree + 1):
            a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            a_prev = math.sqrt((4 * (l - 1) ** 2 - 1) / ((l - 1) ** 2 - m * m))
            p[l, m] = a * (x * p[l - 1, m] - p[l - 2, m] / a_prev)
    features = []
    for l in range(degree + 1):
        features += [math.sqrt(2.0) * p[l, -m] * torch.sin(-m * lon) for m in range(-l, 0)]
        features.append(p[l, 0])
        features += [math.sqrt(2.0) * p[l, m] * torch.cos(m * lon) for m in range(1, l + 1)]
    return torch.stack(features, dim=-1)


class Siren(nn.Module):
    r"""Sinusoidal representation network: ``layers`` hidden layers
    :math:`h \mapsto \sin(\omega_0 (W h + b))` and a linear output layer, with SIREN's
    initialisation (first layer :math:`U(-1/n, 1/n)`, later ones
    :math:`U(-\sqrt{6/n}/\omega_0, \sqrt{6/n}/\omega_0)`, :math:`n` the fan-in)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, layers: int, w0: float = 1.0) -> None:
        super().__init__()
        self.w0 = w0
        dims = [in_dim] + [hidden_dim] * layers
        linears = [nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:])]
        for i, linear in enumerate(linears):
            bound = 1.0 / linear.in_features if i == 0 else math.sqrt(6.0 / linear.in_features) / w0
            nn.init.uniform_(linear.weight, -bound, bound)
        self.hidden = nn.ModuleList(linears)
        self.out = nn.Linear(dims[-1], out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for linear in self.hidden:
            x = torch.sin(self.w0 * linear(x))
        return self.out(x)


class SphericalHarmonicEncoding(nn.Module):
    r"""Additive position encoding ``(B, H, W, C) -> (B, H, W, C)``: ``x + f(PE)`` with
    :math:`\mathrm{PE}` the real spherical harmonics up to ``degree`` at the grid's points
    (:func:`real_spherical_harmonics`) and :math:`f` a linear map (``siren_layers = 0``) or a
    :class:`Siren` with ``siren_layers`` hidden layers of ``siren_hidden`` features.

    The output layer starts at zero (an untrained model has no position information, as
    the learned embedding it replaces). The harmonics of the current grid are a
    non-persistent buffer: checkpoints hold only :math:`f`, and :meth:`set_grid` moves the
    encoding to any grid.
    """

    harmonics: torch.Tensor

    def __init__(self, grid: Grid, degree: int, channels: int, siren_layers: int = 0, siren_hidden: int = 64,
                 w0: float = 1.0) -> None:
        super().__init__()
        self.degree = degree
        n = (degree + 1) ** 2
        self.map: nn.Module = Siren(n, siren_hidden, channels, siren_layers, w0) if siren_layers else nn.Linear(n, channels)
        out = self.map.out if isinstance(self.map, Siren) else self.map
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.register_buffer("harmonics", torch.empty(0), persistent=False)
        self.set_grid(grid)

    def set_grid(self, grid: Grid) -> None:
        """Evaluate the harmonics on ``grid``'s points: ``(nlat, nlon, (L+1)^2)``."""
        colat = torch.as_tensor(grid.colat, dtype=torch.float64)[:, None].expand(grid.nlat, grid.nlon)
        lon = torch.as_tensor(grid.lon, dtype=torch.float64).deg2rad()[None, :].expand(grid.nlat, grid.nlon)
        device = self.harmonics.device
        self.harmonics = real_spherical_harmonics(colat, lon, self.degree).float().to(device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.map(self.harmonics.to(x.dtype))

    def extra_repr(self) -> str:
        return f"degree={self.degree}, grid={tuple(self.harmonics.shape[:2])}"
