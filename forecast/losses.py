r"""Area-weighted losses and metrics on the sphere.

With latitude weights :math:`a_j` normalised to mean 1 (:meth:`pipelines.grids.Grid.area_weights`,
from the grid's quadrature weights) and variable weights :math:`w_c` normalised to mean 1,
the training loss of a prediction :math:`\hat y` against :math:`y`, shapes ``(B, C, H, W)``, is

.. math:: L = \frac{1}{B C H W} \sum_{b,c,j,k} w_c \, a_j \, (\hat y_{bcjk} - y_{bcjk})^2 ,

an estimate of the area-weighted mean squared error over the sphere. The multi-step
loss averages :math:`L` over the :math:`n` autoregressive steps.

Ensemble training (a noise-conditioned model, :math:`M \ge 2` members per sample) uses the
*almost fair* CRPS of AIFS-CRPS (Lang et al. 2024) with the same weights,

.. math:: \mathrm{CRPS}_\alpha = \frac{1}{2M(M-1)} \sum_j \sum_{k \ne j}
          \big[|x_j - y| + |x_k - y| - (1 - \epsilon)|x_j - x_k|\big], \qquad \epsilon = \frac{1 - \alpha}{M},

which for :math:`\alpha = 1` is the fair CRPS (Ferro 2014) and for :math:`\alpha < 1` keeps
the members from collapsing onto each other when :math:`M` is small.

FourCastNet 3's spectral term adds the same CRPS of the amplitudes :math:`|c_{lm}|` of each
field's orthonormal spherical-harmonic coefficients (:class:`SpectralCRPS`). A pointwise
CRPS cannot see that every member carries too much power at small scales when the
members disagree there anyway; the amplitude of each :math:`(l, m)` can.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.harmonics import order_multiplicity, sht


def variable_weight_vector(variables: list[str], weights: dict[str, float]) -> np.ndarray:
    """``(C,)`` weights for ``variables`` (1 where not given), normalised to mean 1."""
    unknown = sorted(set(weights) - set(variables))
    if unknown:
        raise InputError(f"variable_weights name {', '.join(unknown)}, which are not trained variables ({', '.join(variables)})")
    values = np.array([float(weights.get(v, 1.0)) for v in variables])
    if np.any(values < 0) or values.sum() <= 0:
        raise InputError(f"variable_weights must be >= 0 with a positive sum, got {weights}")
    return values / values.mean()


class AreaWeightedMSE(nn.Module):
    """Area- and variable-weighted MSE, ``(B, C, H, W) x (B, C, H, W) -> ()``.

    Parameters
    ----------
    grid
        Grid whose quadrature weights give the latitude weights (mean 1).
    variable_weights
        ``(C,)`` non-negative weights; normalised to mean 1 here.
    """

    # buffers (registered in __init__), typed for the checker
    weights: torch.Tensor

    def __init__(self, grid: Grid, variable_weights: np.ndarray) -> None:
        super().__init__()
        lat_w = torch.as_tensor(grid.area_weights().values, dtype=torch.float32)
        var_w = torch.as_tensor(np.asarray(variable_weights) / np.mean(variable_weights), dtype=torch.float32)
        self.register_buffer("weights", var_w[:, None, None] * lat_w[None, :, None], persistent=False)  # (C, H, 1)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        error = (prediction.float() - target.float()) ** 2
        return (error * self.weights).mean()


def squared_error_sums(prediction: torch.Tensor, target: torch.Tensor, lat_weights: torch.Tensor) -> torch.Tensor:
    r"""Per-variable sums over samples of the area-weighted spatial MSE, ``(C,)`` float64.

    For inputs ``(B, C, H, W)`` returns :math:`\sum_b \frac{1}{HW}\sum_{jk} a_j (\hat y - y)^2_{bcjk}`;
    divide by the number of samples and take the square root for an RMSE.
    """
    error = (prediction.double() - target.double()) ** 2 * lat_weights.double()[:, None]
    return error.mean(dim=(-2, -1)).sum(dim=0)


#: members closer than this, relative to the sample's mean magnitude, count as tied (see almost_fair_crps)
TIE_TOLERANCE = 1e-4


def almost_fair_crps(members: torch.Tensor, target: torch.Tensor, alpha: float = 0.95) -> torch.Tensor:
    r"""Pointwise almost-fair CRPS (module docstring): ``members (B, M, ...)``, ``target (B, ...)`` -> ``(B, ...)``.

    Uses :math:`\sum_{j \ne k} (|x_j - y| + |x_k - y|) = 2 (M - 1) \sum_j |x_j - y|`. The
    spread term :math:`\sum_{j,k} |x_j - x_k|` and its gradient, :math:`2 r_j` with
    :math:`r_j = \sum_k \mathrm{sign}(x_j - x_k)` per member (its subgradient), come from one
    pass of :math:`O(M^2)` comparisons without an autograd graph.

    Why the ranks: members that agree to within float rounding (:data:`TIE_TOLERANCE` times
    the sample's mean :math:`|x|`; rounding errors scale with the field, not the point) count
    as tied, ``sign = 0``, so their spread term pulls neither apart.
    An untrained noise-conditioned model (zero-initialised modulation) gives every member the
    same state, and a sort would give the tied members opposite gradients decided by rounding,
    which depends on the CPU's kernels and the batch layout: training would not be
    reproducible across process counts (the DDP test saw it on AMD CPUs).
    """
    m = members.shape[1]
    if m < 2:
        raise InputError(f"the CRPS needs at least 2 members per sample, got {m}; set train.ensemble_members >= 2")
    if not 0.0 < alpha <= 1.0:
        raise InputError(f"crps_alpha must be in (0, 1], got {alpha}")
    skill = (members - target.unsqueeze(1)).abs().mean(dim=1)
    with torch.no_grad():
        tolerance = TIE_TOLERANCE * members.abs().mean(dim=tuple(range(1, members.dim())), keepdim=True)
        exact = torch.zeros_like(skill)
        rank = torch.zeros_like(members)
        for k in range(m):   # O(M^2) comparisons, O(M) memory
            difference = members - members[:, k:k + 1]
            exact += difference.abs().sum(dim=1)
            rank += torch.where(difference.abs() <= tolerance, 0.0, torch.sign(difference))
    # sum over ordered pairs of |x_j - x_k|: the exact value, the tie-aware gradient
    linear = 2.0 * (rank * members).sum(dim=1)
    pair_sum = exact + linear - linear.detach()
    epsilon = (1.0 - alpha) / m
    return skill - (1.0 - epsilon) * pair_sum / (2.0 * m * (m - 1))


# SpectralCRPS's normalised form: no degree's reference power below this fraction of its
# variable's mean power per degree
REFERENCE_FLOOR = 1e-3


class SpectralCRPS(nn.Module):
    r"""Almost-fair CRPS of spherical-harmonic amplitudes, ``(B, M, C, H, W) x (B, C, H, W) -> ()``.

    With :math:`c_{lm}` the orthonormal real SHT of a field (:func:`pipelines.harmonics.sht`,
    every degree of the grid: :math:`l, m < L`), the term is

    .. math:: S = \frac{L}{\sqrt{4\pi}} \, \frac{\sum_c w_c \sum_{l \ge m} g_m \,
              \mathrm{CRPS}_\alpha(|c^{(j)}_{lm}|, |c^{y}_{lm}|)}{C \sum_{l \ge m} g_m},
              \qquad g_0 = 1, \; g_{m > 0} = 2,

    the coefficient-mean CRPS (``g`` counts :math:`\pm m` of the real field:
    :func:`pipelines.harmonics.order_multiplicity`). Since
    :math:`\sum g_m |c_{lm}|^2 = \int f^2 \, d\Omega`, a white error of unit variance per
    point spreads :math:`4\pi` over about :math:`L^2` coefficients, amplitude
    :math:`\sqrt{4\pi}/L` each: the factor :math:`L/\sqrt{4\pi}` puts :math:`S` on the scale of
    the pointwise CRPS, so the weight of the term means the same on every grid.

    With ``reference`` (the training data's mean power per degree :math:`\bar P_{cl}`, ``(C, L)``)
    each amplitude is divided by its degree's climatological amplitude
    :math:`\sigma_{cl} = \sqrt{\bar P_{cl} / (2l + 1)}` and every degree weighs alike,

    .. math:: S = \frac{1}{C L} \sum_c w_c \sum_l \frac{\sum_{m \le l} g_m\,
              \mathrm{CRPS}_\alpha(|c^{(j)}_{lm}| / \sigma_{cl}, |c^{y}_{lm}| / \sigma_{cl})}{2l + 1},

    so the degrees where the data hold little power (the dissipation range, the largest scales
    of the vorticity) count as much as the energetic ones: too much or too little power there
    is penalised in proportion to the climate's own amplitude. A degree's power is floored at
    :data:`REFERENCE_FLOOR` times the variable's mean power per degree: a degree the data hold
    (almost) nothing at, as the zero global mean of the vorticity (:math:`\bar P \approx 10^{-17}`),
    would otherwise divide by almost zero and outweigh every other term of the loss.
    """

    # buffers (registered in __init__), typed for the checker
    weights: torch.Tensor
    scale: torch.Tensor

    def __init__(self, grid: Grid, variable_weights: np.ndarray, alpha: float = 0.95,
                 reference: np.ndarray | None = None) -> None:
        super().__init__()
        self.alpha = alpha
        self.sht = sht(grid)
        lmax = self.sht.lmax
        g = order_multiplicity(lmax, self.sht.mmax)
        var_w = np.asarray(variable_weights) / np.mean(variable_weights)
        if reference is None:
            weights = var_w[:, None, None] * g[None] / g.sum() * lmax / math.sqrt(4.0 * math.pi)
            scale = np.ones((len(var_w), lmax, 1))
        else:
            degree = np.arange(lmax)
            weights = var_w[:, None, None] * (g / (2 * degree + 1)[:, None])[None] / lmax
            power = np.asarray(reference, dtype=np.float64)[:, :lmax]
            power = np.maximum(power, REFERENCE_FLOOR * power.mean(axis=1, keepdims=True) + 1e-30)
            scale = np.sqrt(power / (2 * degree + 1))[..., None]
        self.register_buffer("weights", torch.as_tensor(weights, dtype=torch.float32), persistent=False)  # (C, L, M)
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32), persistent=False)      # (C, L, 1)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        amplitude = self.sht(prediction.float()).abs() / self.scale
        crps = almost_fair_crps(amplitude, self.sht(target.float()).abs() / self.scale, self.alpha)   # (B, C, L, M)
        return (crps * self.weights).sum(dim=(-2, -1)).mean()


class AreaWeightedCRPS(AreaWeightedMSE):
    """Area- and variable-weighted almost-fair CRPS, ``(B, M, C, H, W) x (B, C, H, W) -> ()``,
    plus ``spectral_weight`` times :class:`SpectralCRPS` (FourCastNet 3 uses 0.1)."""

    def __init__(self, grid: Grid, variable_weights: np.ndarray, alpha: float = 0.95,
                 spectral_weight: float = 0.0, spectral_reference: np.ndarray | None = None) -> None:
        super().__init__(grid, variable_weights)
        self.alpha = alpha
        if spectral_weight < 0:
            raise InputError(f"crps_spectral_weight must be >= 0, got {spectral_weight}")
        self.spectral_weight = spectral_weight
        self.spectral = (SpectralCRPS(grid, variable_weights, alpha, spectral_reference) if spectral_weight > 0
                         else None)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        crps = almost_fair_crps(prediction.float(), target.float(), self.alpha)
        loss = (crps * self.weights).mean()
        if self.spectral is not None:
            loss = loss + self.spectral_weight * self.spectral(prediction, target)
        return loss
