r"""Tensorised spectral weights of the SFNO: Tucker and CP factorisations (as MG-TFNO's).

The dense spectral weights are a real tensor :math:`W \in \mathbb{R}^{2 \times L \times C_{in}
\times C_{out}}` (real and imaginary parts, degree, input and output channel;
:class:`~forecast.models.sfno.convolution.SpectralConvS2`). Here it is a low-rank tensor:

* Tucker, ranks :math:`(r_0, r_1, r_2, r_3)`:
  :math:`W = G \times_0 U^{(0)} \times_1 U^{(1)} \times_2 U^{(2)} \times_3 U^{(3)}`,
  core :math:`G \in \mathbb{R}^{r_0 \times r_1 \times r_2 \times r_3}`, factors
  :math:`U^{(k)} \in \mathbb{R}^{n_k \times r_k}`;
* CP (canonical polyadic), rank :math:`R`:
  :math:`W_{abcd} = \sum_{r<R} A_{ar} B_{br} C_{cr} D_{dr}`.

The convolution reconstructs :math:`W` (a few small contractions) and multiplies as the dense
one does, so a factorised SFNO computes the same operator class with fewer parameters.
``rank`` in the config is the fraction of the dense parameter count
:math:`2 L C_{in} C_{out}` the factorisation may use (tensorly-torch's convention); the
ranks that fit are :func:`tucker_ranks` and :func:`cp_rank`.

References: Kossaifi J. et al. (2023), "Multi-Grid Tensorized Fourier Neural Operator for
High-Resolution PDEs", TMLR, https://arxiv.org/abs/2310.00120; Kolda T. G., Bader B. W.
(2009), "Tensor Decompositions and Applications", SIAM Review 51(3) (HOSVD: section 4.2).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn

from forecast.models.sfno.convolution import SpectralConv, SpectralConvS2

__all__ = ["TuckerSpectralConvS2", "CPSpectralConvS2", "make_spectral_conv", "tucker_ranks", "cp_rank", "hosvd"]

Factorisation = Literal["dense", "tucker", "cp"]


def _tucker_size(dims: tuple[int, ...], ranks: tuple[int, ...]) -> int:
    return math.prod(ranks) + sum(n * r for n, r in zip(dims, ranks))


def tucker_ranks(dims: tuple[int, ...], ratio: float) -> tuple[int, ...]:
    r"""Ranks :math:`r_k = \max(1, \mathrm{round}(f n_k))`, :math:`f \le 1` the largest fraction (by
    bisection) whose Tucker tensor has at most ``ratio`` times the dense size :math:`\prod n_k`
    (at least rank 1 everywhere; ``ratio`` >= the full-rank size gives the full ranks)."""
    budget = ratio * math.prod(dims)

    def ranks(f: float) -> tuple[int, ...]:
        return tuple(max(1, min(n, round(f * n))) for n in dims)
    lo, hi = 0.0, 1.0
    if _tucker_size(dims, ranks(hi)) <= budget:
        return ranks(hi)
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _tucker_size(dims, ranks(mid)) <= budget else (lo, mid)
    return ranks(lo)


def cp_rank(dims: tuple[int, ...], ratio: float) -> int:
    r"""CP rank :math:`R = \max(1, \lfloor \rho \prod n_k / \sum n_k \rfloor)` for a fraction
    :math:`\rho` = ``ratio`` of the dense size."""
    return max(1, int(ratio * math.prod(dims) / sum(dims)))


def hosvd(weight: torch.Tensor, ranks: tuple[int, ...]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    r"""Truncated higher-order SVD: factors :math:`U^{(k)}` the leading ``ranks[k]`` left singular
    vectors of the mode-:math:`k` unfolding, core :math:`G = W \times_k U^{(k)\top}`. Exact
    (:math:`W = G \times_k U^{(k)}`) when every rank is the rank of its unfolding, e.g. full."""
    factors = []
    for k, r in enumerate(ranks):
        unfolded = weight.movedim(k, 0).reshape(weight.shape[k], -1)
        u = torch.linalg.svd(unfolded, full_matrices=False)[0][:, :r]
        factors.append(u)
    return _tucker_contract(weight, [u.T for u in factors]), factors


def _tucker_contract(core: torch.Tensor, factors: list[torch.Tensor]) -> torch.Tensor:
    """``core`` multiplied in every mode ``k`` by ``factors[k]`` ``(n_k, r_k)``."""
    return torch.einsum("abcd,ia,jb,kc,ld->ijkl", core, *factors)


class TuckerSpectralConvS2(SpectralConv):
    r"""Spectral convolution with Tucker-factorised weights (module docstring), ranks ``ranks``
    for the modes ``(re/im, l, i, o)``. Initialised with orthonormal random factors and a
    normal core scaled so that :math:`E|w|^2 = g / C_{in}` as the dense convolution's."""

    def __init__(self, lmax: int, in_channels: int, out_channels: int, ranks: tuple[int, ...],
                 gain: float = 2.0) -> None:
        super().__init__()
        self.lmax, self.in_channels, self.out_channels = lmax, in_channels, out_channels
        dims = (2, lmax, in_channels, out_channels)
        if len(ranks) != 4 or any(not 1 <= r <= n for r, n in zip(ranks, dims)):
            raise ValueError(f"Tucker ranks {ranks} must be 4 values in [1, {dims}]")
        self.ranks = tuple(ranks)
        std = math.sqrt(gain / in_channels / 2.0)
        core_std = std / math.sqrt(math.prod(r / n for r, n in zip(ranks, dims)))
        self.core = nn.Parameter(core_std * torch.randn(*ranks))
        self.factors = nn.ParameterList(nn.Parameter(torch.linalg.qr(torch.randn(n, r))[0]) for n, r in zip(dims, ranks))

    @classmethod
    def from_dense(cls, weight: torch.Tensor, ranks: tuple[int, ...] | None = None) -> "TuckerSpectralConvS2":
        """The convolution whose weights are the HOSVD of dense ``weight`` ``(2, L, C_in, C_out)``
        (:func:`hosvd`; ``ranks`` None: full, an exact reconstruction)."""
        ranks = tuple(weight.shape) if ranks is None else ranks
        conv = cls(weight.shape[1], weight.shape[2], weight.shape[3], ranks).to(weight.dtype)
        core, factors = hosvd(weight.detach(), ranks)
        with torch.no_grad():
            conv.core.copy_(core)
            for parameter, factor in zip(conv.factors, factors):
                parameter.copy_(factor)
        return conv

    def dense_weight(self) -> torch.Tensor:
        return _tucker_contract(self.core, list(self.factors))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, tucker ranks={self.ranks}"


class CPSpectralConvS2(SpectralConv):
    r"""Spectral convolution with CP-factorised weights (module docstring) of rank ``rank``.
    Initialised with normal factors of equal scale, :math:`E|w|^2 = g / C_{in}` as the dense one."""

    def __init__(self, lmax: int, in_channels: int, out_channels: int, rank: int, gain: float = 2.0) -> None:
        super().__init__()
        self.lmax, self.in_channels, self.out_channels, self.rank = lmax, in_channels, out_channels, rank
        if rank < 1:
            raise ValueError(f"CP rank must be >= 1, got {rank}")
        variance = gain / in_channels / 2.0
        factor_std = (variance / rank) ** 0.125    # E W^2 = R prod_k std_k^2
        self.factors = nn.ParameterList(nn.Parameter(factor_std * torch.randn(n, rank))
                                        for n in (2, lmax, in_channels, out_channels))

    @classmethod
    def from_dense(cls, weight: torch.Tensor) -> "CPSpectralConvS2":
        r"""The exact CP form of dense ``weight`` ``(2, L, C_in, C_out)``: rank :math:`R = 2 L C_{in}`,
        one term per fibre :math:`W_{abc:}` (:math:`A, B, C` selectors, :math:`D` the fibres).
        Every tensor has this CP form, so it shows that CP at full rank spans the dense weights."""
        two, lmax, cin, cout = weight.shape
        conv = cls(lmax, cin, cout, two * lmax * cin).to(weight.dtype)
        eye = torch.eye(two * lmax * cin, dtype=weight.dtype).view(two, lmax, cin, -1)
        with torch.no_grad():
            conv.factors[0].copy_(eye.sum((1, 2)))
            conv.factors[1].copy_(eye.sum((0, 2)))
            conv.factors[2].copy_(eye.sum((0, 1)))
            conv.factors[3].copy_(weight.detach().reshape(-1, cout).T)
        return conv

    def dense_weight(self) -> torch.Tensor:
        a, b, c, d = self.factors
        return torch.einsum("ar,br,cr,dr->abcd", a, b, c, d)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, cp rank={self.rank}"


def make_spectral_conv(lmax: int, in_channels: int, out_channels: int, factorisation: Factorisation = "dense",
                       rank: float = 1.0, gain: float = 2.0) -> SpectralConv:
    """The spectral convolution ``factorisation`` with at most ``rank`` times the dense parameters."""
    dims = (2, lmax, in_channels, out_channels)
    if factorisation == "tucker":
        return TuckerSpectralConvS2(lmax, in_channels, out_channels, tucker_ranks(dims, rank), gain)
    if factorisation == "cp":
        return CPSpectralConvS2(lmax, in_channels, out_channels, cp_rank(dims, rank), gain)
    return SpectralConvS2(lmax, in_channels, out_channels, gain)
