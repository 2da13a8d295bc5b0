r"""Building blocks shared by the neural models, all acting on **channels-last** tensors.

Every layer here maps ``(..., C_in)`` to ``(..., C_out)`` with the channel dim last,
so that point-wise layers are a single GEMM over all grid points (``nn.Linear``) rather
than a 1x1 convolution, which is markedly slower on CPU (and no faster on GPU).

* :class:`MLP` - two-layer point-wise perceptron :math:`W_2\,\sigma(W_1 x + b_1)`.
* :class:`DropPath` - stochastic depth (Huang et al. 2016).
* :class:`DropoutMasks` - per-sample seeded dropout masks (dropout as a model's noise source).
* :class:`ChannelsLastInstanceNorm` - instance norm over the grid (dims 1, 2).
* :data:`ACTIVATIONS`, :data:`NORMALIZATIONS` - the one mapping from config names to layers.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn as nn

__all__ = ["MLP", "DropPath", "DropoutMasks", "ChannelsLastInstanceNorm", "ACTIVATIONS", "NORMALIZATIONS", "make_norm"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}


class MLP(nn.Module):
    r"""Point-wise two-layer perceptron on the last dim.

    .. math:: y = W_2\,\sigma(W_1 x + b_1) \; (+\, b_2)

    Weights are drawn as in torch-harmonics' example models: :math:`W_1 \sim
    \mathcal N(0, 2/C_{in})` (He init for the activation) and :math:`W_2 \sim
    \mathcal N(0, g/C_{hidden})` with gain ``g``.

    Parameters
    ----------
    in_features, hidden_features, out_features
        Channel counts.
    activation
        Activation class, e.g. ``nn.GELU``.
    gain
        Variance gain of the output layer.
    output_bias
        Whether the output layer has a bias.
    drop_rate
        Dropout probability after the activation (0 disables it).
    """

    def __init__(self, in_features: int, hidden_features: int, out_features: int,
                 activation: type[nn.Module] = nn.GELU, gain: float = 1.0,
                 output_bias: bool = False, drop_rate: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features, bias=True)
        self.act = activation()
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=output_bias)
        nn.init.normal_(self.fc1.weight, std=math.sqrt(2.0 / in_features))
        nn.init.zeros_(self.fc1.bias)
        nn.init.normal_(self.fc2.weight, std=math.sqrt(gain / hidden_features))
        if self.fc2.bias is not None:
            nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor, masks: "DropoutMasks | None" = None) -> torch.Tensor:
        """``(..., in_features) -> (..., out_features)``; ``masks`` draws the dropout masks
        from per-sample generators (``x`` then has the batch first) instead of the global RNG."""
        hidden = self.act(self.fc1(x))
        if masks is not None:
            rate = self.drop.p if isinstance(self.drop, nn.Dropout) else 0.0
            return self.fc2(masks.apply(hidden, rate, per_element=True))
        return self.fc2(self.drop(hidden))


class DropPath(nn.Module):
    r"""Stochastic depth: in training, zero a whole sample's branch with probability ``p``
    and scale the survivors by :math:`1/(1-p)`; the identity in evaluation.

    Reference: Huang et al. (2016), "Deep networks with stochastic depth".
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor, masks: "DropoutMasks | None" = None) -> torch.Tensor:
        """``(B, ...) -> (B, ...)``; with ``masks`` the mask comes from per-sample generators
        and is applied whatever the mode (dropout as a source of ensemble spread)."""
        if masks is not None:
            return masks.apply(x, self.p, per_element=False)
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DropoutMasks:
    r"""Dropout masks drawn from one generator per sample, in call order.

    Sample :math:`b`'s masks depend only on its own generator and on the order of the
    dropout layers it goes through, not on the batch it is in, the process or the device.
    So a model whose only randomness is dropout at inference (the interpolator of
    Spherical DYffusion) gives a seeded, bit-reproducible ensemble. Masks are drawn on
    the CPU (the generators are CPU generators) and moved to the activations' device.

    With ``member_generators`` each mask is the product of two: one drawn afresh from
    ``generators`` at rate :math:`p` (the layer's) and one at rate :math:`q`
    (``member_rate``) from generators that the caller creates anew from the same seeds at
    every model step, so that the :math:`k`-th dropout call of every step gets the same
    member mask:

    .. math:: y = x \odot m^{\text{step}} \odot m^{\text{member}} / ((1-p)(1-q)).

    The member masks make each member one network drawn from the dropout ensemble for its
    whole forecast (Gal & Ghahramani 2016): an error that persists from step to step, as a
    model's error does, where fresh masks alone give an error that averages out over steps.

    Parameters
    ----------
    generators
        One CPU generator per sample of the batch.
    member_generators
        One CPU generator per sample for the member masks (None: none).
    member_rate
        :math:`q`, the member masks' drop rate (MLP dropout and drop path alike).
    """

    def __init__(self, generators: list[torch.Generator], member_generators: list[torch.Generator] | None = None,
                 member_rate: float = 0.0) -> None:
        self.generators = list(generators)
        self.member_generators = None if member_generators is None else list(member_generators)
        if self.member_generators is not None and len(self.member_generators) != len(self.generators):
            raise ValueError(f"{len(self.member_generators)} member mask generators for {len(self.generators)} samples")
        if not 0.0 <= member_rate < 1.0:
            raise ValueError(f"member dropout rate must be in [0, 1), got {member_rate}")
        self.member_rate = member_rate if self.member_generators is not None else 0.0

    def doubled(self) -> "DropoutMasks":
        """The masks of the batch stacked twice (``[x, x]``): each sample's generators draw
        the masks of its first copy, then of its second."""
        members = None if self.member_generators is None else self.member_generators * 2
        return DropoutMasks(self.generators * 2, members, self.member_rate)

    def apply(self, x: torch.Tensor, p: float, per_element: bool) -> torch.Tensor:
        r"""``x * mask / keep``, ``x`` ``(B, ...)`` with ``B`` = number of generators; the
        mask keeps each element (``per_element``) or each sample's whole tensor (drop path)
        with probability ``keep`` = :math:`(1 - p)(1 - q)`."""
        if p <= 0.0 and self.member_rate <= 0.0:
            return x
        if x.shape[0] != len(self.generators):
            raise ValueError(f"{len(self.generators)} mask generators for a batch of {x.shape[0]}")
        shape = tuple(x.shape[1:]) if per_element else (1,) * (x.dim() - 1)
        keep, mask = 1.0, None
        for rate, generators in ((p, self.generators), (self.member_rate, self.member_generators)):
            if rate <= 0.0 or generators is None:
                continue
            # uniform draws compared with the keep probability: twice as fast as bernoulli_ on the CPU
            drawn = torch.stack([torch.rand(shape, generator=g) < 1.0 - rate for g in generators])
            mask = drawn if mask is None else mask & drawn
            keep *= 1.0 - rate
        assert mask is not None
        return x * mask.to(device=x.device, dtype=x.dtype) / keep

    def __len__(self) -> int:
        return len(self.generators)


class ChannelsLastInstanceNorm(nn.Module):
    r"""Instance normalisation of ``(B, H, W, C)`` fields over the grid dims ``(H, W)``.

    .. math:: y = \gamma \, \frac{x - \bar x}{\sqrt{\operatorname{var}(x) + \epsilon}} + \beta

    with the (unweighted) mean and biased variance taken per sample and channel. It is
    invariant to longitude shifts, so it keeps SFNO's rotation equivariance.
    """

    def __init__(self, num_features: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C) -> (B, H, W, C)``."""
        var, mean = torch.var_mean(x, dim=(1, 2), keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


def _layer_norm(channels: int) -> nn.Module:
    return nn.LayerNorm(channels, eps=1e-6)


NORMALIZATIONS: dict[str, Callable[[int], nn.Module]] = {
    "none": lambda channels: nn.Identity(),
    "layer": _layer_norm,                      # over channels, per grid point
    "instance": ChannelsLastInstanceNorm,      # over the grid, per channel
}


def make_norm(kind: str, channels: int) -> nn.Module:
    """The normalisation layer ``kind`` (a key of :data:`NORMALIZATIONS`) for ``channels``."""
    return NORMALIZATIONS[kind](channels)
