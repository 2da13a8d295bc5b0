r"""Adaptive Fourier Neural Operator as in FourCastNet (Pathak et al. 2022; Guibas et al. 2021).

Architecture::

    x (B, C+F, H, W) -> pad to patch multiples -> patch embedding (B, h, w, D) [+ pos. embedding]
      -> N x [u = u + AFNO2D(LN(u)); u = u + DropPath(MLP(LN(u)))] -> linear head to p1*p2*C
      -> patch recovery (B, C, H', W') -> crop to (H, W)

The token mixer :class:`AFNO2D` works in 2-D Fourier space, channel blocks of size
:math:`D/K` mixed by a complex two-layer MLP shared by all modes:

.. math:: \hat z = \mathrm{rfft2}(u), \quad
          \hat y_k = S_\lambda\big(W_2^{(k)} \,\mathrm{ReLU}(W_1^{(k)} \hat z_k + b_1^{(k)}) + b_2^{(k)}\big), \quad
          y = \mathrm{irfft2}(\hat y) + u

with :math:`S_\lambda` the soft-shrinkage (``sparsity_threshold``) applied to real and
imaginary parts, and only the lowest ``hard_thresholding_fraction`` of the modes (in both
directions) kept; the others are zero. The complex products are real ``bmm`` over the blocks
with :math:`\begin{pmatrix}\Re W & \Im W\\ -\Im W & \Re W\end{pmatrix}` weights.

Padding: latitude is padded with zeros at the south, longitude periodically (the grid is
periodic in longitude), to the next multiple of the patch size; the output is cropped back.

References: Guibas J. et al. (2021), "Adaptive Fourier Neural Operators: Efficient Token
Mixers for Transformers", arXiv:2111.13587; Pathak J. et al. (2022), "FourCastNet",
arXiv:2202.11214.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from forecast.config import ModelConfig
from forecast.models.base import InferenceOptions, PrognosticModel
from forecast.models.layers import ACTIVATIONS, MLP, DropPath
from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["AFNO", "AFNO2D", "AFNOBlock"]


def _complex_block(w: torch.Tensor) -> torch.Tensor:
    """Complex weights ``(K, n_in, n_out, 2)`` as real ``(K, 2 n_in, 2 n_out)`` blocks,
    rows ``(re/im, i)``, columns ``(re/im, o)``."""
    wr, wi = w[..., 0], w[..., 1]
    return torch.cat([torch.cat([wr, wi], dim=2), torch.cat([-wi, wr], dim=2)], dim=1)


class AFNO2D(nn.Module):
    """Fourier token mixer, ``(B, h, w, D)`` -> ``(B, h, w, D)`` (see the module docstring).

    Parameters
    ----------
    dim
        Channels ``D``; must be divisible by ``num_blocks``.
    num_blocks
        Number of diagonal channel blocks ``K``.
    sparsity_threshold
        Soft-shrinkage threshold :math:`\\lambda`.
    hard_thresholding_fraction
        Fraction of the Fourier modes kept in each direction.
    hidden_size_factor
        Width of the complex MLP relative to the block size.
    """

    def __init__(self, dim: int, num_blocks: int = 8, sparsity_threshold: float = 0.01,
                 hard_thresholding_fraction: float = 1.0, hidden_size_factor: int = 1) -> None:
        super().__init__()
        if dim % num_blocks:
            raise InputError(f"AFNO embed_dim {dim} is not divisible by num_blocks {num_blocks}")
        self.dim, self.num_blocks = dim, num_blocks
        self.block_size = dim // num_blocks
        self.sparsity_threshold = sparsity_threshold
        self.fraction = hard_thresholding_fraction
        hidden = self.block_size * hidden_size_factor
        scale = 0.02
        self.w1 = nn.Parameter(scale * torch.randn(num_blocks, self.block_size, hidden, 2))
        self.b1 = nn.Parameter(scale * torch.randn(num_blocks, 1, 2 * hidden))
        self.w2 = nn.Parameter(scale * torch.randn(num_blocks, hidden, self.block_size, 2))
        self.b2 = nn.Parameter(scale * torch.randn(num_blocks, 1, 2 * self.block_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, d = x.shape
        spec = torch.fft.rfft2(x.float(), dim=(1, 2), norm="ortho")              # (B, h, w//2+1, D)
        kept_lat = max(1, int(math.ceil(h / 2 * self.fraction)))
        kept_lon = max(1, int(math.ceil((w // 2 + 1) * self.fraction)))
        rows = torch.cat([torch.arange(kept_lat), torch.arange(h - min(kept_lat, h // 2), h)]).unique()
        sel = spec[:, rows.to(x.device), :kept_lon] if rows.numel() < h else spec[:, :, :kept_lon]
        n = sel.shape[0] * sel.shape[1] * sel.shape[2]
        # (B, r, k, K, bs) complex -> (K, n, 2 bs) real: one bmm per channel block
        z = torch.view_as_real(sel).reshape(n, self.num_blocks, self.block_size, 2)
        z = z.permute(1, 0, 3, 2).reshape(self.num_blocks, n, 2 * self.block_size)
        z = F.relu(torch.baddbmm(self.b1, z, _complex_block(self.w1)))
        z = F.softshrink(torch.baddbmm(self.b2, z, _complex_block(self.w2)), lambd=self.sparsity_threshold)
        z = z.view(self.num_blocks, n, 2, self.block_size).permute(1, 0, 3, 2).reshape(*sel.shape, 2)
        out = torch.zeros_like(torch.view_as_real(spec))
        if rows.numel() < h:
            out[:, rows.to(x.device), :kept_lon] = z
        else:
            out[:, :, :kept_lon] = z
        y = torch.fft.irfft2(torch.view_as_complex(out), s=(h, w), dim=(1, 2), norm="ortho")
        return y.to(x.dtype) + x


class AFNOBlock(nn.Module):
    """``u = u + AFNO2D(LN(u)); u = u + DropPath(MLP(LN(u)))`` on ``(B, h, w, D)`` (FourCastNet's
    "double skip" block)."""

    def __init__(self, dim: int, mlp_ratio: float, activation: type[nn.Module], drop_path: float,
                 num_blocks: int, sparsity_threshold: float, hard_thresholding_fraction: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.filter = AFNO2D(dim, num_blocks, sparsity_threshold, hard_thresholding_fraction)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dim, activation=activation, output_bias=True)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # AFNO2D adds its own input; FourCastNet's double skip adds the block input too
        x = self.filter(self.norm1(x)) + x
        return x + self.drop_path(self.mlp(self.norm2(x)))


class AFNO(PrognosticModel):
    """FourCastNet-style AFNO on a latitude-longitude grid, see the module docstring.

    Parameters
    ----------
    grid, n_state, n_forcing, residual
        See :class:`~forecast.models.base.PrognosticModel`.
    embed_dim, num_layers, patch_size, mlp_ratio
        Token width, number of blocks, ``(p_lat, p_lon)`` patch, MLP expansion.
    num_blocks, sparsity_threshold, hard_thresholding_fraction
        See :class:`AFNO2D`.
    activation, pos_embed, drop_path_rate
        MLP activation name, learnable per-patch position embedding, stochastic depth.
    """

    def __init__(self, grid: Grid, n_state: int, n_forcing: int, *, embed_dim: int = 64, num_layers: int = 4,
                 patch_size: tuple[int, int] = (4, 4), mlp_ratio: float = 2.0, num_blocks: int = 8,
                 sparsity_threshold: float = 0.01, hard_thresholding_fraction: float = 1.0,
                 activation: str = "gelu", residual: bool = True, pos_embed: bool = True,
                 drop_path_rate: float = 0.0) -> None:
        super().__init__(grid, n_state, n_forcing, residual)
        if len(patch_size) != 2 or min(patch_size) < 1:
            raise InputError(f"AFNO patch_size must be two positive integers, got {list(patch_size)}")
        self.patch = (int(patch_size[0]), int(patch_size[1]))
        self.padded = tuple(-(-n // p) * p for n, p in zip(grid.shape, self.patch))
        tokens = (self.padded[0] // self.patch[0], self.padded[1] // self.patch[1])
        in_dim = n_state + n_forcing
        self.embed = nn.Conv2d(in_dim, embed_dim, kernel_size=self.patch, stride=self.patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, *tokens, embed_dim)) if pos_embed else None
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        rates = torch.linspace(0, drop_path_rate, num_layers).tolist()
        self.blocks = nn.ModuleList(
            AFNOBlock(embed_dim, mlp_ratio, ACTIVATIONS[activation], rates[i], num_blocks, sparsity_threshold,
                      hard_thresholding_fraction) for i in range(num_layers))
        self.head = nn.Linear(embed_dim, n_state * self.patch[0] * self.patch[1], bias=False)

    @classmethod
    def from_config(cls, config: ModelConfig, grid: Grid, n_state: int, n_forcing: int,
                    options: InferenceOptions = InferenceOptions()) -> "AFNO":
        if config.noise_channels:
            raise InputError("model.noise_channels is for the SFNO; the AFNO is deterministic (set it to 0)")
        if config.mlp_dropout:
            raise InputError("model.mlp_dropout is for the SFNO and DYffusion; the AFNO has none (set it to 0)")
        return cls(grid, n_state, n_forcing, embed_dim=config.embed_dim, num_layers=config.num_layers,
                   patch_size=(config.patch_size[0], config.patch_size[1]), mlp_ratio=config.mlp_ratio, num_blocks=config.num_blocks,
                   sparsity_threshold=config.sparsity_threshold,
                   hard_thresholding_fraction=config.hard_thresholding_fraction, activation=config.activation,
                   residual=config.residual, pos_embed=config.pos_embed, drop_path_rate=config.drop_path_rate)

    def network(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is not None:
            raise ValueError("the AFNO is deterministic: it takes no noise")
        nlat, nlon = self.grid.shape
        pad_lat, pad_lon = self.padded[0] - nlat, self.padded[1] - nlon
        if pad_lon:  # periodic in longitude
            x = torch.cat([x, x[..., :pad_lon]], dim=-1)
        if pad_lat:
            x = F.pad(x, (0, 0, 0, pad_lat))
        u = self.embed(x).permute(0, 2, 3, 1)                    # (B, h, w, D)
        if self.pos_embed is not None:
            u = u + self.pos_embed
        for block in self.blocks:
            u = block(u)
        out = self.head(u)                            # (B, h, w, p1*p2*C)
        b, h, w, _ = out.shape
        p1, p2 = self.patch
        out = out.view(b, h, w, p1, p2, self.n_state).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(b, self.n_state, h * p1, w * p2)[:, :, :nlat, :nlon]
