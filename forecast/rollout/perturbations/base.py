"""The :class:`Perturbation` protocol, per-variable amplitudes, and the perturbations that
combine others (:class:`Compose`, :class:`Centred`) or none (:class:`Identity`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["Perturbation", "Identity", "Compose", "Centred", "amplitude_vector", "weighted_rms", "lat_weights",
           "check_state"]


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


def lat_weights(grid: Grid, device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.as_tensor(grid.latitude_weights, dtype=torch.float32, device=device)


class Identity:
    """No perturbation (``kind: none``)."""

    def __call__(self, state: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return state


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


def check_state(state: torch.Tensor, grid: Grid, n_vars: int) -> tuple[int, int, int, int]:
    if state.ndim != 4 or tuple(state.shape[1:]) != (n_vars, grid.nlat, grid.nlon):
        raise ValueError(f"expected a state (member, {n_vars}, {grid.nlat}, {grid.nlon}), got {tuple(state.shape)}")
    m, c, h, w = state.shape
    return m, c, h, w
