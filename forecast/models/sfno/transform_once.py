r"""Transform-once (T1) blocks: the SFNO's layers in spherical-harmonic space, between one
forward and one inverse transform.

Poli et al. ("Transform Once", 2022) replace the transform pair of every FNO layer by a single
forward transform at the start and a single inverse at the end; the layers in between act
on the (truncated) spectrum. Here the spectrum is the real spherical-harmonic coefficients
:math:`\hat u_{lm}` (:math:`l, m < L`) as ``(M, L, B, 2, C)``: real and imaginary parts are
:math:`2C` real features, and block :math:`k` maps

.. math:: \hat u' = P\Big(\hat u + \mathrm{MLP}\big(\mathcal{K}\hat u\big)\Big), \qquad
          (\mathcal K \hat u)_{o,l,m} = \sum_i \hat u_{i,l,m} w_{l,i,o},

with :math:`\mathcal K` the SFNO's per-degree convolution, the MLP point-wise over the
coefficients :math:`(l, m)` acting on the :math:`2C` real features (hidden width :math:`C` x ``mlp_ratio``: twice an
SFNO block's MLP parameters, for inputs and outputs of :math:`2C`) with the activation applied
to the real and imaginary parts separately (as T1 does: real-valued layers on the stacked
real and imaginary parts of the spectrum), and :math:`P` the projection onto coefficients of
real fields (:math:`m \le l`, :math:`\mathrm{Im}\,\hat u_{l0} = 0`). The split activation is not
equivariant under rotations about the axis (a longitude shift rotates the phase of
:math:`\hat u_{lm}`); the T1 paper accepts this too.

Initialisation: T1's variance-preserving initialisation keeps the variance of the
coefficients through the layers; here :math:`E|w|^2 = 1/C_{in}` (gain 1, not the SFNO's 2,
since no activation follows :math:`\mathcal K` on its own) and the MLP's output layer has
gain :math:`1/N` for :math:`N` blocks, so the residual stream's variance grows by at most a
factor of about :math:`e` over the blocks.

Reference: Poli M. et al. (2022), "Transform Once: Efficient Operator Learning in Frequency
Domain", NeurIPS, https://arxiv.org/abs/2211.14453.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from forecast.models.layers import MLP
from forecast.models.sfno.factorised import Factorisation, make_spectral_conv

__all__ = ["TransformOnceBlock", "real_field_mask"]


def real_field_mask(mmax: int, lmax: int) -> torch.Tensor:
    r"""``(M, L, 1, 2, 1)`` mask of the coefficients a real field has: :math:`m \le l`, and the
    real part only at :math:`m = 0`."""
    m = torch.arange(mmax)[:, None]
    l = torch.arange(lmax)[None, :]
    mask = (m <= l).float()[:, :, None, None, None].repeat(1, 1, 1, 2, 1)
    mask[0, :, :, 1] = 0.0
    return mask


class TransformOnceBlock(nn.Module):
    """One T1 block on coefficients ``(M, L, B, 2, C) -> (M, L, B, 2, C)`` (module docstring)."""

    mask: torch.Tensor

    def __init__(self, lmax: int, mmax: int, dim: int, mlp_ratio: float, activation: type[nn.Module],
                 num_layers: int, factorisation: Factorisation = "dense", rank: float = 1.0) -> None:
        super().__init__()
        self.conv = make_spectral_conv(lmax, dim, dim, factorisation, rank, gain=1.0)
        self.mlp = MLP(2 * dim, int(dim * mlp_ratio), 2 * dim, activation=activation, gain=1.0 / num_layers)
        self.register_buffer("mask", real_field_mask(mmax, lmax), persistent=False)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        m, l, b, _, c = s.shape
        y = self.conv(s).reshape(m, l, b, 2 * c)                  # (re, im) as 2C features
        return (s + self.mlp(y).view(m, l, b, 2, c)) * self.mask[:m, :l]   # fewer degrees on a coarser grid
