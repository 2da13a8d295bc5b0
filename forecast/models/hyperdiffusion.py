r"""Spectral hyperdiffusion of a model's new state, as spectral dynamical cores damp theirs.

After every step the state's spherical-harmonic coefficients of degree :math:`l` are multiplied by

.. math:: D_l = \exp\!\Big(-\frac{\Delta t}{\tau}\,\Big(\frac{l(l+1)}{L(L+1)}\Big)^{p}\Big),

an implicit hyperdiffusion (order :math:`2p` in the gradient) with e-folding time :math:`\tau` at
the reference degree :math:`L`: scales well above :math:`L` lose their energy within a
step, scales below it barely feel it. :math:`\Delta t` is the model step (the data's; the
first constraint of the step's chain, :mod:`forecast.models.constraints`, sets it). torch-harmonics' shallow-water solver damps its
vorticity and divergence this way every sub-step (:math:`\tau` = 2 h at its largest degree,
:math:`p = 4`), and NeuralGCM filters its states with the same exponential form.

Why a learned model may want it: a network puts energy at scales the data do not have
(above a spectral solver's truncation, or where the data have almost no power), and a
filter in the step, in training and at inference alike, removes it every step while the
network learns the rest of the dynamics. What it does to skill, spectra and the length of
rollouts is measured, not assumed: ``benchmarks/long_rollout.py`` and ``benchmarks/skill.py``
(``docs/benchmarks.md``, ``docs/skill.md``); ``benchmarks/hyperdiffusion.py`` times it.

Scalar fields ``(..., C, H, W)`` are transformed on the model's grid (:func:`pipelines.harmonics.sht`,
degrees :math:`l < n_{lat}`); the :math:`l = 0` mean is never touched, so the
filter commutes with the per-variable normalisation. Wind components are filtered as the
vector field they form (:func:`pipelines.harmonics.vector_sht`: the spheroidal and toroidal
parts, i.e. divergence and vorticity, as the solver damps them): a flow whose vorticity and
divergence stop at degree 21 has components ``u``, ``v`` with power far above it (the
:math:`1/\cos\varphi` of the gradients), which a scalar filter would take away. The pairs come
from the variable names (:func:`wind_pairs`). ERA5's ``(u, v)`` (east, north) and
torch-harmonics' colatitude-longitude components differ by a 90 degree rotation of every
vector, which swaps the spheroidal and toroidal parts and commutes with the filter, so
either works.
A vector field is only a vector field in physical units (a normalised ``u`` has its mean
taken away, and a constant eastward wind has power at every degree), so the wind pairs are
filtered as :math:`\sigma_c \hat x_c + \mu_c`, with the store's statistics given to
:meth:`SpectralHyperdiffusion.set_normalisation`.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pipelines import harmonics
from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["SpectralHyperdiffusion", "wind_pairs"]


def wind_pairs(variables: list[str]) -> list[tuple[int, int]]:
    """Channel indices ``(i_u, i_v)`` of the wind components among ``variables``: every name
    ``u<rest>`` with a ``v<rest>`` beside it (``u``/``v``, ``u10``/``v10``, ``u_850``/``v_850``)."""
    index = {name: i for i, name in enumerate(variables)}
    return [(i, index["v" + name[1:]]) for i, name in enumerate(variables)
            if name.startswith("u") and "v" + name[1:] in index]


class SpectralHyperdiffusion(nn.Module):
    r"""The filter :math:`D_l` of the module docstring on ``(..., C, H, W)`` fields.

    Parameters
    ----------
    grid
        The model's grid.
    efold_hours
        :math:`\tau`, the e-folding time (h) at the reference degree.
    degree
        :math:`L`; None: the grid's largest degree (``nlat - 1``).
    order
        :math:`p`, the power of :math:`l(l+1)` (4: the shallow-water solver's :math:`\nabla^8`).
    vector_pairs
        ``(i_u, i_v)`` channel pairs filtered as vector fields (:func:`wind_pairs`); the other
        channels are filtered as scalars.
    """

    # buffers (registered in __init__), typed for the checker
    factors: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, grid: Grid, efold_hours: float, degree: int | None = None, order: int = 4,
                 vector_pairs: list[tuple[int, int]] | None = None) -> None:
        super().__init__()
        lmax = grid.nlat
        degree = lmax - 1 if degree is None else int(degree)
        if not 1 <= degree < lmax:
            raise InputError(f"hyperdiffusion degree {degree} must be between 1 and the grid's largest degree "
                             f"{lmax - 1}")
        if efold_hours <= 0 or order < 1:
            raise InputError(f"hyperdiffusion needs a positive e-folding time and order, got {efold_hours} h, {order}")
        self.efold_hours, self.degree, self.order = float(efold_hours), degree, int(order)
        self.sht, self.isht = harmonics.sht(grid), harmonics.inverse_sht(grid)
        self.vector_pairs = [(int(a), int(b)) for a, b in (vector_pairs or [])]
        if self.vector_pairs:
            self.vsht, self.ivsht = harmonics.vector_sht(grid), harmonics.inverse_vector_sht(grid)
        # (L,) damping per step; ones (no damping) until the model step is known
        self.register_buffer("factors", torch.ones(lmax))
        # (C,) per-channel statistics: the filter works in physical units (set from the data)
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("std", torch.zeros(0))

    def rates(self) -> torch.Tensor:
        r"""``(L,)`` damping rates :math:`(l(l+1)/L(L+1))^p / \tau` in 1/s."""
        l = torch.arange(self.factors.numel(), dtype=torch.float64)
        return (l * (l + 1) / (self.degree * (self.degree + 1))) ** self.order / (self.efold_hours * 3600.0)

    def set_time_step(self, seconds: float) -> None:
        """Set :math:`D_l` for a model step of ``seconds``."""
        if not seconds > 0:
            raise ValueError(f"the model step must be positive, got {seconds} s")
        self.factors.copy_(torch.exp(-seconds * self.rates()).to(self.factors.dtype))

    def set_normalisation(self, mean, std) -> None:
        """The per-channel mean and standard deviation ``(C,)`` of the normalised fields."""
        mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)
        if mean.shape != std.shape or not bool(torch.all(std > 0)):
            raise ValueError(f"normalisation needs matching means and positive stds, got {mean} and {std}")
        self.mean, self.std = mean.to(self.factors.device), std.to(self.factors.device)

    def forward(self, new: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        """``(..., C, H, W)`` normalised fields -> the same, filtered (a
        :class:`~forecast.models.constraints.StepConstraint`; ``previous`` is not needed)."""
        x = new.reshape(-1, *new.shape[-3:])                              # (B, C, H, W)
        factors, dtype = self.factors[:, None], x.dtype                   # (L, 1) over orders m
        if self.vector_pairs and self.mean.numel() != x.shape[1]:
            raise ValueError(f"the hyperdiffusion of wind vectors needs the statistics of the {x.shape[1]} channels "
                             "(set_normalisation)")
        channels = list(torch.unbind(x.float(), dim=1))
        paired = {i for pair in self.vector_pairs for i in pair}
        scalars = [c for c in range(len(channels)) if c not in paired]
        if scalars:
            filtered = self.isht(self.sht(torch.stack([channels[c] for c in scalars], dim=1)) * factors)
            for k, c in enumerate(scalars):
                channels[c] = filtered[:, k]
        for a, b in self.vector_pairs:     # in physical units (module docstring)
            wind = torch.stack([channels[a] * self.std[a] + self.mean[a], channels[b] * self.std[b] + self.mean[b]], 1)
            wind = self.ivsht(self.vsht(wind) * factors)                # (B, 2, H, W)
            channels[a] = (wind[:, 0] - self.mean[a]) / self.std[a]
            channels[b] = (wind[:, 1] - self.mean[b]) / self.std[b]
        return torch.stack(channels, dim=1).to(dtype).reshape(new.shape)

    def extra_repr(self) -> str:
        return (f"efold_hours={self.efold_hours:g}, degree={self.degree}, order={self.order}, "
                f"vector_pairs={self.vector_pairs}")
