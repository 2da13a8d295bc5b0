r"""The SFNO's spectral convolution: per-degree channel mixing of spherical-harmonic coefficients.

.. math:: \hat v_{o,l,m} = \sum_i \hat u_{i,l,m}\, w_{l,i,o}, \qquad w \in \mathbb{C}^{L \times C_{in} \times C_{out}},

weights that depend on the degree :math:`l` only (the "driscoll-healy" operator of
torch-harmonics' SFNO: a convolution with a zonal kernel, Driscoll & Healy 1994).

Reference: Driscoll J. R., Healy D. M. (1994), "Computing Fourier transforms and convolutions
on the 2-sphere", Advances in Applied Mathematics 15(2), 202-250.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["SpectralConv", "SpectralConvS2"]


class SpectralConv(nn.Module):
    r"""The convolution of the module docstring on coefficients ``(M, L, B, 2, C_in)`` (as
    :class:`~forecast.models.sfno.sht.ChannelsLastRealSHT` gives them) -> ``(M, L, B, 2, C_out)``,
    for any parametrisation of the weights :math:`w` (:meth:`dense_weight`): dense
    (:class:`SpectralConvS2`) or factorised (:mod:`forecast.models.sfno.factorised`).

    The complex product is one real ``bmm`` over :math:`l` with the block matrix
    :math:`\begin{pmatrix} \Re w & \Im w \\ -\Im w & \Re w \end{pmatrix}` acting on
    :math:`(\Re \hat u, \Im \hat u)` (weights broadcast over :math:`m`). Coefficients of fewer
    degrees than the weights (a model moved to a coarser grid) use the first ones.
    """

    lmax: int
    in_channels: int
    out_channels: int

    def dense_weight(self) -> torch.Tensor:
        """``(2, L, C_in, C_out)``: real and imaginary parts of :math:`w`."""
        raise NotImplementedError

    def real_weight(self) -> torch.Tensor:
        """``(L, 2 C_in, 2 C_out)``, rows ``(re/im, i)``, columns ``(re/im, o)``."""
        weight = self.dense_weight()
        wr, wi = weight[0], weight[1]
        return torch.cat([torch.cat([wr, wi], dim=2), torch.cat([-wi, wr], dim=2)], dim=1)

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        m, l, b, _, c = s.shape
        a = s.reshape(m, l, b, 2 * c).transpose(0, 1).reshape(l, m * b, 2 * c)
        out = torch.bmm(a, self.real_weight()[:l])   # a coarser grid's transforms keep fewer degrees
        return out.view(l, m, b, 2, self.out_channels).transpose(0, 1)

    def extra_repr(self) -> str:
        return f"lmax={self.lmax}, in_channels={self.in_channels}, out_channels={self.out_channels}"


class SpectralConvS2(SpectralConv):
    r"""The convolution with dense weights (:class:`SpectralConv`). Weights are drawn with
    :math:`E|w|^2 = g / C_{in}`; ``weight[0]`` is the real part, ``weight[1]`` the imaginary part.
    """

    def __init__(self, lmax: int, in_channels: int, out_channels: int, gain: float = 2.0) -> None:
        super().__init__()
        self.lmax, self.in_channels, self.out_channels = lmax, in_channels, out_channels
        std = math.sqrt(gain / in_channels / 2.0)  # per real/imaginary part
        self.weight = nn.Parameter(std * torch.randn(2, lmax, in_channels, out_channels))

    def dense_weight(self) -> torch.Tensor:
        return self.weight
