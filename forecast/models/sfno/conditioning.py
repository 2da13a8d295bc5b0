r"""Conditioning of the SFNO's blocks: on noise (a stochastic SFNO) and on a step (DYffusion).

Both modulate a block's normalised activations :math:`h` (channels-last ``(B, H, W, C)``) as a
conditional layer norm does, :math:`h \mapsto h \odot (1 + a) + b`, with :math:`a, b` maps
initialised at zero, so that an untrained conditioned SFNO is exactly the unconditioned one:

* :class:`NoiseConditioning`: :math:`a = W_s n`, :math:`b = W_b n` point-wise from ``K``
  isotropic noise fields :math:`n` on the block's grid (ACE2S's stochastic SFNO);
* :class:`StepModulation`: :math:`(a, b)` from :class:`StepEmbedding`'s embedding of the step
  :math:`i` (Spherical DYffusion's interpolator and forecaster).

The noise is drawn as spherical-harmonic coefficients up to the model's truncation, white
(equal variance per coefficient) or with FourCastNet 3's degree spectrum
(:func:`noise_degree_sigma`), and each block scales its synthesised fields to unit variance
per point (:func:`white_noise_scale`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from forecast.models.sfno.sht import ChannelsLastInverseRealSHT

__all__ = ["NoiseConditioning", "StepEmbedding", "StepModulation", "noise_degree_sigma", "white_noise_scale"]

EARTH_RADIUS_KM = 6371.0


class NoiseConditioning(nn.Module):
    r"""Conditional modulation of a block's normalised activations by noise fields
    (ACE2S's conditional layer norm):

    .. math:: h \mapsto h \odot (1 + W_s n) + W_b n ,

    with :math:`n` ``K`` isotropic noise fields on the block's grid and :math:`W_s, W_b`
    point-wise ``K -> C`` maps initialised at zero, so an untrained stochastic SFNO is
    exactly the deterministic one and training starts from it.
    """

    def __init__(self, noise_channels: int, dim: int) -> None:
        super().__init__()
        self.scale = nn.Linear(noise_channels, dim, bias=False)
        self.shift = nn.Linear(noise_channels, dim, bias=False)
        nn.init.zeros_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, h: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return h * (1.0 + self.scale(noise)) + self.shift(noise)


class StepEmbedding(nn.Module):
    r"""Embedding of a (possibly fractional) step :math:`i` for step-conditioned SFNOs
    (Spherical DYffusion's interpolator and forecaster), as diffusion models embed time:

    .. math:: e(i) = \mathrm{MLP}\big([\sin(\omega_k i), \cos(\omega_k i)]_{k}\big),
              \qquad \omega_k = \omega_{\max}^{-k/K}, \; k = 0..K-1,

    ``(B,)`` steps -> ``(B, dim)``.
    """

    omega: torch.Tensor   # buffer (frequencies,)

    def __init__(self, dim: int, frequencies: int = 16, max_period: float = 100.0) -> None:
        super().__init__()
        self.register_buffer("omega", max_period ** (-torch.arange(frequencies, dtype=torch.float32) / frequencies),
                             persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * frequencies, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        angle = step.to(self.omega.dtype)[:, None] * self.omega
        return self.mlp(torch.cat([angle.sin(), angle.cos()], dim=-1))


class StepModulation(nn.Module):
    r"""A block's (scale, shift) from the step embedding, applied after the block's norm:
    :math:`h \mapsto h \odot (1 + a(e)) + b(e)`, with :math:`a, b` linear maps initialised
    at zero (an untrained step-conditioned SFNO ignores the step)."""

    def __init__(self, embed_dim: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(embed_dim, 2 * dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(embedding)[:, None, None, :].chunk(2, dim=-1)   # (B, 1, 1, C) each
        return h * (1.0 + scale) + shift


def white_noise_scale(isht: ChannelsLastInverseRealSHT, sigma: torch.Tensor | None = None) -> float | torch.Tensor:
    r"""``1 / std`` of a field synthesised by ``isht`` from unit-normal coefficients (real and
    imaginary parts, :math:`m = 0` real): the pointwise variance
    :math:`\sum_l P_{l0}^2 + 4 \sum_{m>0} \sum_l P_{lm}^2`, averaged over latitudes. With
    ``sigma`` ``(L, K)`` (coefficients of degree :math:`l` scaled by :math:`\sigma_{lk}`): ``(K,)``."""
    pct = isht.pct.double()                                            # (M, H, L)
    per_degree = pct[0].square() + 4.0 * pct[1:].square().sum(dim=0)   # (H, L)
    if sigma is None:
        return float(1.0 / per_degree.sum(1).mean().sqrt())
    variance = (per_degree[:, :, None] * sigma.double()[None] ** 2).sum(1).mean(0)   # (K,)
    return (1.0 / variance.sqrt()).float()


def noise_degree_sigma(modes: int, length_scales_km: list[float]) -> torch.Tensor:
    r"""``(L, K)`` standard deviations of the degree-:math:`l` coefficients of each noise
    channel, :math:`\sigma_{lk} = \exp(-\kappa_k l(l+1)/2)`, :math:`\kappa_k = (L_k/R)^2/2`
    (FourCastNet 3's noise; :math:`R` the Earth's radius; the blocks scale each channel's
    fields to unit variance: :func:`white_noise_scale`)."""
    degree = torch.arange(modes, dtype=torch.float64)[:, None]
    kappa = (torch.tensor(length_scales_km, dtype=torch.float64)[None, :] / EARTH_RADIUS_KM) ** 2 / 2.0
    return torch.exp(-kappa * degree * (degree + 1) / 2.0).float()
