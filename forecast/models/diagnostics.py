r"""Diagnosed variables: fields that are functions of others, computed instead of predicted.

The relative vorticity is the curl of the wind, :math:`\zeta = \mathbf k \cdot \nabla \times \mathbf u`.
A model that predicts ``vo`` beside ``u`` and ``v`` as three channels can make them disagree,
most at the degrees where the data's vorticity has little power (the largest scales: a
solid-body rotation of the whole atmosphere, :math:`l = 1`, the angular momentum the drag
takes out). :class:`DiagnosedVorticity` replaces every predicted ``vo<rest>`` by the curl of the
predicted ``u<rest>``, ``v<rest>``, in training and at inference (a step constraint,
:mod:`forecast.models.constraints`), so the vorticity is what the winds say, as in the data
(the pipeline regrids winds as vectors: the curl of the stored winds is the stored vorticity).

With the vector spherical-harmonic transform of :math:`(u, v)` (:func:`pipelines.harmonics.vector_sht`,
spheroidal and toroidal coefficients :math:`s_{lm}, t_{lm}`) the curl is
:math:`\hat\zeta_{lm} = -\frac{l(l+1)}{a}\, s_{lm}` in torch-harmonics' convention (its
shallow-water solver's ``vrtdivspec``), synthesised with the scalar inverse transform.
Wind and vorticity are handled in physical units (m s-1, s-1) through the store's statistics.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from pipelines import harmonics
from pipelines.grids import EARTH_RADIUS_M, Grid

__all__ = ["DiagnosedVorticity", "vorticity_triples"]


def vorticity_triples(variables: list[str]) -> list[tuple[int, int, int]]:
    """``(i_u, i_v, i_vo)`` of every ``u<rest>``, ``v<rest>``, ``vo<rest>`` among ``variables``."""
    index = {name: i for i, name in enumerate(variables)}
    return [(i, index["v" + name[1:]], index["vo" + name[1:]]) for i, name in enumerate(variables)
            if name.startswith("u") and "v" + name[1:] in index and "vo" + name[1:] in index]


class DiagnosedVorticity(nn.Module):
    """``vo`` channels replaced by the curl of the wind channels (module docstring), on
    normalised ``(..., C, H, W)`` states; ``mean``, ``std`` ``(C,)`` in physical units."""

    # buffers (registered in __init__), typed for the checker
    curl: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, grid: Grid, triples: list[tuple[int, int, int]], mean, std) -> None:
        super().__init__()
        self.triples = [(int(a), int(b), int(c)) for a, b, c in triples]
        self.vsht, self.isht = harmonics.vector_sht(grid), harmonics.inverse_sht(grid)
        l = torch.arange(self.vsht.lmax, dtype=torch.float32)[:, None]
        self.register_buffer("curl", -l * (l + 1) / EARTH_RADIUS_M, persistent=False)    # (L, 1)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(-1), persistent=False)
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(-1), persistent=False)

    def forward(self, new: torch.Tensor, previous: torch.Tensor | None = None) -> torch.Tensor:
        x = new.reshape(-1, *new.shape[-3:])
        channels = list(torch.unbind(x, dim=1))
        for a, b, c in self.triples:
            wind = torch.stack([x[:, a] * self.std[a] + self.mean[a], x[:, b] * self.std[b] + self.mean[b]], 1)
            vorticity = self.isht(self.curl * self.vsht(wind.float())[:, 0])           # (B, H, W), s-1
            channels[c] = ((vorticity - self.mean[c]) / self.std[c]).to(x.dtype)
        return torch.stack(channels, dim=1).reshape(new.shape)
