r"""Global-mean conservation: each new state keeps the area-weighted global mean of chosen
variables that the state it was stepped from had.

For a variable :math:`c` in the conserved set, a step's input :math:`x` and output :math:`y`,

.. math:: \langle f \rangle = \frac{1}{4\pi}\int_{S^2} f\,dA
          = \frac{1}{2 N_\lambda}\sum_{j} w_j \sum_{i} f_{ij}, \qquad
          y'_c = y_c + \langle x_c \rangle - \langle y_c \rangle,

with :math:`w_j` the grid's quadrature weights over :math:`\cos\theta` (summing to 2) and
:math:`N_\lambda` the number of longitudes. Only the global mean (spherical-harmonic degree
:math:`l = 0`) changes; every other degree, and every other variable, is left as it is.

Why: some quantities are conserved by the physics (on the demo's shallow-water data the
mean layer depth, i.e. the mass, and the global mean of vorticity, which is zero), and a
learned emulator can drift in them over long rollouts (``benchmarks/long_rollout.py`` prints
the forecast's global mean against the truth's). The spectral cap
(:mod:`forecast.models.spectral_cap`) leaves :math:`l = 0` alone, so such a drift stays
"finite" and unnoticed. ACE (Watt-Meyer et al. 2023) corrects its steps the same way for
global dry-air mass. The normalisation is affine per variable, so conserving the normalised
mean conserves the physical one. Applied after each step at inference (``forecast rollout``
``conserve_global_mean``), after the cap (:mod:`forecast.models.constraints`; the two commute:
the cap never touches :math:`l = 0`, this never touches :math:`l \ge 1`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["GlobalMeanConservation", "global_mean"]


def global_mean(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Area-weighted mean over the last two dims ``(..., H, W) -> (...)``; ``weights``
    ``(H,)`` sum to 1 over latitudes."""
    return (x.mean(-1) * weights).sum(-1)


class GlobalMeanConservation(nn.Module):
    r"""The correction of the module docstring.

    Parameters
    ----------
    grid
        The model's grid (its quadrature weights give the area mean).
    channels
        Indices of the conserved variables among the state's ``C`` channels.
    """

    # buffers (registered in __init__), typed for the checker
    weights: torch.Tensor
    channels: torch.Tensor

    def __init__(self, grid: Grid, channels: Sequence[int]) -> None:
        super().__init__()
        if not channels:
            raise InputError("conserve_global_mean needs at least one variable")
        weights = torch.as_tensor(grid.quadrature_weights, dtype=torch.float64)
        self.register_buffer("weights", weights / weights.sum())                # (H,), sums to 1
        self.register_buffer("channels", torch.as_tensor(list(channels), dtype=torch.long))

    def forward(self, after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
        """``after`` ``(B, C, H, W)`` or ``(B, h, C, H, W)`` (DYffusion's intermediate states, each
        corrected to ``before``'s mean), ``before`` ``(B, C, H, W)`` the state stepped from ->
        ``after`` with the conserved channels' global means set to ``before``'s (a
        :class:`~forecast.models.constraints.StepConstraint`)."""
        if before.dim() != 4 or after.dim() not in (4, 5) or after.shape[-3:] != before.shape[-3:]:
            raise ValueError(f"states of shape {tuple(before.shape)} -> {tuple(after.shape)} do not match")
        target = global_mean(before[:, self.channels].double(), self.weights)        # (B, K)
        current = global_mean(after[..., self.channels, :, :].double(), self.weights)  # (B, [h,] K)
        if after.dim() == 5:
            target = target[:, None]
        out = after.clone()
        out[..., self.channels, :, :] += (target - current).to(after.dtype)[..., None, None]
        return out

    def extra_repr(self) -> str:
        return f"channels={self.channels.tolist()}"
