"""Bred-vector perturbations (Toth & Kalnay 1993, 1997)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from forecast.rollout.perturbations.base import Perturbation, check_state, lat_weights, weighted_rms
from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["BredVector"]


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
        self.weights = lat_weights(grid)

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        m, c, _, _ = check_state(state, self.grid, len(self.amplitude))
        delta = None
        for k in range(self.cycles):
            analysis = self.analyses(k).to(state.device, state.dtype).expand(m, -1, -1, -1)
            if delta is None:
                delta = self.seed(analysis, generator) - analysis
            control = self.advance(analysis, k)   # per member: members may use different models
            grown = self.advance(analysis + delta, k) - control
            delta = self._rescale(grown)
        assert delta is not None   # cycles >= 1
        return state + delta

    def _rescale(self, diff: torch.Tensor) -> torch.Tensor:
        rms = weighted_rms(diff, self.weights.to(diff.device))
        target = self.amplitude.to(diff.device)[None, :]
        scale = torch.where(rms > 0, target / rms.clamp_min(1e-30), torch.zeros_like(rms))
        return diff * scale[..., None, None]
