r"""A cap on a state's power per spherical-harmonic degree: the training data's climate, times a factor.

For every member :math:`b`, variable :math:`c` and degree :math:`l \ge 1`, with
:math:`\hat x_{lm}` the state's orthonormal spherical-harmonic coefficients,

.. math:: P_{bcl} = \sum_m |\hat x_{bclm}|^2, \qquad
          r_{bcl} = \min\Big(1, \sqrt{\kappa\,\bar P_{cl} / P_{bcl}}\Big), \qquad
          x' = x + \mathcal{S}^{-1}\big[(r - 1)\,\hat x\big],

where :math:`\bar P_{cl}` is the mean power per degree of the training data's normalised
states (:func:`reference_power`, carried by the checkpoint) and :math:`\kappa` the factor.
A degree whose power exceeds :math:`\kappa` times the data's is scaled down to it, its
phases (the pattern) kept; every other degree, and the global mean (:math:`l = 0`), is left
as it is. Only the excess is transformed back, so a state within the cap everywhere comes
out bit-identical.

Why: a learned emulator can put energy at degrees where the data have almost none, and
such a pile-up at small scales is the usual road to a blow-up in a long rollout
(``benchmarks/long_rollout.py`` measures the power per band against the truth's).
Spectral dynamical cores keep such scales in check with a filter (hyperdiffusion,
:mod:`forecast.models.hyperdiffusion`); a cap on the power per degree removes only what
exceeds the data's own climate, so it leaves the scales the model gets right alone.
It is a constraint on the output, applied after each step at inference (``forecast
rollout`` ``spectral_cap``; :mod:`forecast.models.constraints`), not something the network learned.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn as nn

from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.harmonics import degree_power, inverse_sht, sht

__all__ = ["SpectralPowerCap", "reference_power"]


def reference_power(states: Iterable[np.ndarray], grid: Grid) -> np.ndarray:
    """Mean power per degree ``(C, L)`` of normalised states, each ``(C, H, W)`` on ``grid``
    (float64 sums; the training data's climate that :class:`SpectralPowerCap` caps at)."""
    transform = sht(grid).double()
    total, n = None, 0
    for state in states:
        power = degree_power(transform(torch.as_tensor(np.asarray(state), dtype=torch.float64)))
        total = power if total is None else total + power
        n += 1
    if total is None:
        raise InputError("the reference spectrum needs at least one state")
    return (total / n).numpy()


class SpectralPowerCap(nn.Module):
    r"""The cap of the module docstring on ``(..., C, H, W)`` normalised states.

    Parameters
    ----------
    grid
        The model's grid.
    reference
        ``(C, L)`` :math:`\bar P_{cl}`, the data's mean power per degree (:func:`reference_power`).
    factor
        :math:`\kappa`: power above ``factor`` times the reference is removed.
    """

    # buffers (registered in __init__), typed for the checker
    cap: torch.Tensor

    def __init__(self, grid: Grid, reference: np.ndarray, factor: float) -> None:
        super().__init__()
        if not factor > 0:
            raise InputError(f"spectral_cap must be a positive factor on the data's power, got {factor}")
        self.sht, self.isht = sht(grid), inverse_sht(grid)
        power = torch.as_tensor(np.asarray(reference), dtype=torch.float32)
        if power.dim() != 2 or power.shape[1] != self.sht.lmax or not bool(torch.all(power >= 0)):
            raise InputError(f"the reference spectrum must be (variables, {self.sht.lmax}) non-negative powers per "
                             f"degree on grid {grid}, got shape {tuple(power.shape)}")
        self.factor = float(factor)
        self.register_buffer("cap", power * self.factor)                  # (C, L)

    def forward(self, new: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """``(..., C, H, W)`` -> the same, each degree's power at most the cap (a
        :class:`~forecast.models.constraints.StepConstraint`; ``previous`` is not needed)."""
        if new.shape[-3] != self.cap.shape[0]:
            raise ValueError(f"the state has {new.shape[-3]} variables; the cap has {self.cap.shape[0]}")
        coeffs = self.sht(new.float())                                        # (..., C, L, M)
        power = degree_power(coeffs)                                          # (..., C, L)
        ratio = torch.sqrt(self.cap / power.clamp_min(torch.finfo(power.dtype).tiny)).clamp(max=1.0)
        ratio[..., 0] = 1.0                                                   # the global mean stays
        if bool(torch.all(ratio == 1.0)):
            return new
        excess = self.isht(coeffs * (ratio - 1.0)[..., None])
        return new + excess.to(new.dtype)

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}, variables={self.cap.shape[0]}, degrees={self.cap.shape[1]}"
