r"""Spherical Fourier Neural Operator (Bonev et al. 2023) on torch-harmonics' transforms.

Architecture (as torch-harmonics' example ``SphericalFourierNeuralOperator``)::

    x (B, C+F, H, W) -> encoder -> [+ pos. embedding] -> block_1 ... block_N -> [concat x] -> decoder

Block :math:`k` maps :math:`u` to

.. math:: u' = S(u) + \mathrm{DropPath}\big(\mathrm{MLP}(\mathrm{Norm}(\mathcal{K} u))\big),
          \qquad \widehat{\mathcal{K} u}_{o,l,m} = \sum_i \hat u_{i,l,m}\, w_{l,i,o}

with :math:`\hat u_{l,m}` the (real) spherical harmonic coefficients, weights that depend on
the degree :math:`l` only (the "driscoll-healy" operator: a convolution with a zonal kernel,
Driscoll & Healy 1994), and :math:`S` the identity or, where the block changes grid, the
band-limited resampling :math:`\mathrm{SHT}^{-1}\,\mathrm{SHT}`. With ``scale_factor`` s the
first block transforms from the full grid and returns on a Legendre-Gauss grid of
``(nlat - 1) // s + 1`` x ``nlon // s`` points, inner blocks stay there, and the last block
returns to the full grid; the truncation is :math:`l, m < \min(h, w/2)` times
``hard_thresholding_fraction``.

Options (``configs/models/sfno-*.yaml``): a grid-free spherical-harmonic position encoding
(:mod:`~forecast.models.sfno.position`; :meth:`SFNO.set_grid` then runs a trained model on
another grid), Tucker / CP factorised spectral weights (:mod:`~forecast.models.sfno.factorised`),
and transform-once blocks (:mod:`~forecast.models.sfno.transform_once`).

Everything is channels-last ``(B, H, W, C)``: the transforms are
:mod:`forecast.models.sfno.sht`, the convolution :mod:`forecast.models.sfno.convolution`, the
noise and step conditioning :mod:`forecast.models.sfno.conditioning`.

Reference: Bonev B. et al. (2023), "Spherical Fourier Neural Operators: Learning Stable
Dynamics on the Sphere", ICML, https://arxiv.org/abs/2306.03838.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from forecast.config import ModelConfig
from forecast.models.base import InferenceOptions, PrognosticModel
from forecast.models.layers import ACTIVATIONS, MLP, DropoutMasks, DropPath, make_norm
from forecast.models.sfno.conditioning import (NoiseConditioning, StepEmbedding, StepModulation, noise_degree_sigma,
                                               white_noise_scale)
from forecast.models.sfno.factorised import Factorisation, make_spectral_conv
from forecast.models.sfno.position import SphericalHarmonicEncoding
from forecast.models.sfno.sht import ChannelsLastInverseRealSHT, ChannelsLastRealSHT
from forecast.models.sfno.transform_once import TransformOnceBlock
from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["SFNO", "SFNOBlock", "PositionEmbedding"]

INTERNAL_GRID = "legendre-gauss"


class SFNOBlock(nn.Module):
    r"""One SFNO block, channels-last ``(B, H, W, C)`` -> ``(B, H', W', C)``:
    :math:`u' = S(u) + \mathrm{DropPath}(\mathrm{MLP}(\mathrm{Norm}(\mathcal K u)))`.

    Where the block changes grid, the skip :math:`S(u)` is the band-limited resampling
    :math:`\mathrm{SHT}^{-1}\mathrm{SHT}\,u`; its inverse transform runs in the same call
    as the convolution's (stacked on the batch dim).
    """

    def __init__(self, sht: ChannelsLastRealSHT, isht: ChannelsLastInverseRealSHT, dim: int,
                 mlp_ratio: float, activation: type[nn.Module], normalization: str, drop_path: float,
                 noise_channels: int = 0, step_embed_dim: int = 0, mlp_dropout: float = 0.0,
                 noise_sigma: torch.Tensor | None = None, factorisation: Factorisation = "dense",
                 rank: float = 1.0) -> None:
        super().__init__()
        self.conv = make_spectral_conv(isht.lmax, dim, dim, factorisation, rank, gain=2.0)
        self.norm = make_norm(normalization, dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio), dim, activation=activation, gain=1.0, drop_rate=mlp_dropout)
        self.drop_path = DropPath(drop_path)
        self.step = StepModulation(step_embed_dim, dim) if step_embed_dim else None
        self.noise = NoiseConditioning(noise_channels, dim) if noise_channels else None
        self.set_transforms(sht, isht, noise_sigma)

    def set_transforms(self, sht: ChannelsLastRealSHT, isht: ChannelsLastInverseRealSHT,
                       noise_sigma: torch.Tensor | None = None) -> None:
        """Run on the grids of ``sht`` (input) and ``isht`` (output), at their truncation (at most
        the convolution's): a trained block moves to another grid with its weights."""
        if isht.lmax > self.conv.lmax:
            raise ValueError(f"the transforms' truncation {isht.lmax} exceeds the block's weights ({self.conv.lmax})")
        self.sht, self.isht = sht, isht
        self.resample = (sht.nlat, sht.nlon, sht.grid) != (isht.nlat, isht.nlon, isht.grid)
        scale = white_noise_scale(isht, noise_sigma) if self.noise is not None else 1.0
        if isinstance(scale, torch.Tensor):
            self.register_buffer("noise_scale", scale.to(isht.pct.device), persistent=False)   # (K,) for shaped noise
        else:
            self.noise_scale = scale

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None, step: torch.Tensor | None = None,
                masks: DropoutMasks | None = None, members: int = 1) -> torch.Tensor:
        """``noise``: spherical-harmonic coefficients ``(M, L, B, 2, K)`` (:meth:`SFNO.draw_noise`);
        ``step``: the step embedding ``(B, E)``; ``masks``: seeded dropout masks. ``members`` > 1:
        ``x`` is one field per sample and ``noise``, ``step``, ``masks`` are per member (``B x
        members``, members fastest): the transforms and the convolution run once per sample, and
        their output is repeated for the members before the noise enters."""
        coeffs = self.sht(x)
        if self.resample:
            y, skip = self.isht(torch.cat([self.conv(coeffs), coeffs], dim=2)).chunk(2, dim=0)
        else:
            y, skip = self.isht(self.conv(coeffs)), x
        h = self.norm(y)
        if members > 1:
            h, skip = h.repeat_interleave(members, dim=0), skip.repeat_interleave(members, dim=0)
        if self.step is not None and step is not None:
            h = self.step(h, step)
        if self.noise is not None and noise is not None:
            h = self.noise(h, self.isht(noise.to(h.dtype)) * self.noise_scale)   # unit-variance fields on this grid
        return skip + self.drop_path(self.mlp(h, masks), masks)


class PositionEmbedding(nn.Module):
    """Learnable additive embedding, ``(H, 1, C)`` (``"lat"``: keeps longitude-shift
    equivariance) or ``(H, W, C)`` (``"latlon"``), initialised to zero."""

    def __init__(self, kind: str, nlat: int, nlon: int, channels: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(nlat, nlon if kind == "latlon" else 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding


def _point_mlp(in_dim: int, out_dim: int, hidden_dim: int, layers: int, activation: type[nn.Module]) -> nn.Module:
    """Encoder/decoder: linear map (``layers=0``, as torch-harmonics' example) or an MLP with one hidden layer."""
    if layers == 0:
        linear = nn.Linear(in_dim, out_dim, bias=False)
        nn.init.normal_(linear.weight, std=math.sqrt(1.0 / in_dim))
        return linear
    return MLP(in_dim, hidden_dim, out_dim, activation=activation, gain=1.0)


class SFNO(PrognosticModel):
    """Spherical Fourier Neural Operator, see the module docstring.

    Parameters
    ----------
    grid, n_state, n_forcing, residual
        See :class:`~forecast.models.base.PrognosticModel`.
    embed_dim, num_layers, scale_factor, mlp_ratio, hard_thresholding_fraction
        Width, number of blocks, grid coarsening inside, MLP expansion, spectral truncation.
    normalization
        ``"none"``, ``"layer"`` (over channels) or ``"instance"`` (over the grid).
    activation
        ``"gelu"``, ``"relu"`` or ``"silu"``.
    big_skip
        Concatenate the input to the last block's output before the decoder.
    pos_embed
        ``None``, ``"lat"`` or ``"latlon"`` learnable embedding added after the encoder, or
        ``"spherical-harmonics"``: real spherical harmonics up to ``sh_degree`` through a SIREN
        of ``sh_siren_layers`` hidden layers of ``sh_siren_hidden`` features (0: a linear map),
        :class:`~forecast.models.sfno.position.SphericalHarmonicEncoding`; grid-free.
    spectral_factorisation, spectral_rank
        The spectral weights dense, or Tucker / CP factorised with at most ``spectral_rank``
        times the dense parameters (:mod:`forecast.models.sfno.factorised`).
    transform_once
        T1 (:mod:`forecast.models.sfno.transform_once`): one forward transform after the encoder,
        the blocks on the coefficients, one inverse before the decoder (``scale_factor`` sets
        the truncation only; ``normalization`` and ``drop_path_rate`` do not apply; the noise of a stochastic
        model modulates the features after the inverse transform; no step conditioning).
    drop_path_rate
        Stochastic depth, rising linearly from 0 to this over the blocks.
    encoder_layers
        Hidden layers of the encoder and decoder MLPs (0: linear maps).
    noise_channels
        Noise fields of a stochastic (noise-conditioned) SFNO; 0 is deterministic.
    step_conditioning
        Take a step :math:`i` (:class:`StepEmbedding`, :class:`StepModulation` in every
        block); without it, the SFNO above.
    mlp_dropout
        Dropout after the activation of each block's MLP.
    noise_length_scales_km
        One length scale :math:`L_k` per noise channel: channel :math:`k`'s coefficients of
        degree :math:`l` get the standard deviation :math:`\sigma_{lk} \propto
        \exp(-\kappa_k l(l+1)/2)`, :math:`\kappa_k = (L_k/R)^2/2` (FourCastNet 3's noise;
        :math:`R` the Earth's radius), scaled so that every channel keeps unit variance per
        point. None: white noise (equal variance per coefficient).
    noise_autocorrelation
        :math:`\phi` of the noise's AR(1) in time (:meth:`PrognosticModel.step_noise`).
    noise_amplitude
        Factor on the noise (1 in training; an inference setting that widens or narrows the
        ensemble).
    """

    def __init__(self, grid: Grid, n_state: int, n_forcing: int, *, embed_dim: int = 64, num_layers: int = 4,
                 scale_factor: int = 2, mlp_ratio: float = 2.0, hard_thresholding_fraction: float = 1.0,
                 normalization: str = "none", activation: str = "gelu", residual: bool = True,
                 big_skip: bool = True, pos_embed: str | None = "lat", drop_path_rate: float = 0.0,
                 encoder_layers: int = 1, noise_channels: int = 0, step_conditioning: bool = False,
                 mlp_dropout: float = 0.0, noise_length_scales_km: list[float] | None = None,
                 noise_autocorrelation: float = 0.0, noise_amplitude: float = 1.0, sh_degree: int = 10,
                 sh_siren_layers: int = 0, sh_siren_hidden: int = 64, spectral_factorisation: Factorisation = "dense",
                 spectral_rank: float = 1.0, transform_once: bool = False) -> None:
        super().__init__(grid, n_state, n_forcing, residual)
        if transform_once and step_conditioning:
            raise InputError("transform_once SFNO blocks take no step conditioning")
        self._noise_channels = noise_channels
        self._noise_autocorrelation = float(noise_autocorrelation)
        self._noise_amplitude = float(noise_amplitude)
        self.scale_factor, self.hard_thresholding_fraction = scale_factor, hard_thresholding_fraction
        self.transform_once = transform_once
        act = ACTIVATIONS[activation]
        in_dim = n_state + n_forcing
        self.big_skip = big_skip
        self.encoder = _point_mlp(in_dim, embed_dim, int(embed_dim * mlp_ratio), encoder_layers, act)
        self.pos_embed: nn.Module = nn.Identity()
        if pos_embed == "spherical-harmonics":
            self.pos_embed = SphericalHarmonicEncoding(grid, sh_degree, embed_dim, sh_siren_layers, sh_siren_hidden)
        elif pos_embed:
            self.pos_embed = PositionEmbedding(pos_embed, grid.nlat, grid.nlon, embed_dim)
        transforms = _transforms(grid, scale_factor, hard_thresholding_fraction)
        modes = transforms[3].lmax   # every transform of the model has the same truncation
        self.modes = self.noise_modes = modes
        self.noise_length_scales_km = noise_length_scales_km
        self.noise_sigma = None if noise_length_scales_km is None else noise_degree_sigma(modes, noise_length_scales_km)
        rates = torch.linspace(0, drop_path_rate, num_layers).tolist()
        self.step_embedding = StepEmbedding(embed_dim) if step_conditioning else None
        self.blocks: nn.ModuleList
        if transform_once:
            self.sht, self.isht = transforms[0], transforms[1]
            self.blocks = nn.ModuleList(
                TransformOnceBlock(modes, modes, embed_dim, mlp_ratio, act, num_layers, spectral_factorisation,
                                   spectral_rank) for _ in range(num_layers))
            self.noise = NoiseConditioning(noise_channels, embed_dim) if noise_channels else None
            self.register_buffer("noise_scale", torch.as_tensor(
                white_noise_scale(self.isht, self.noise_sigma) if noise_channels else 1.0), persistent=False)
        else:
            self.blocks = nn.ModuleList(
                SFNOBlock(transforms[0] if i == 0 else transforms[2],
                          transforms[1] if i == num_layers - 1 else transforms[3],
                          embed_dim, mlp_ratio, act, normalization, rates[i], noise_channels,
                          embed_dim if step_conditioning else 0, mlp_dropout, self.noise_sigma,
                          spectral_factorisation, spectral_rank)
                for i in range(num_layers))
        dec_in = embed_dim + (in_dim if big_skip else 0)
        self.decoder = _point_mlp(dec_in, n_state, int(embed_dim * mlp_ratio), encoder_layers, act)

    inference_options = {"noise_amplitude": "a factor on the noise of a stochastic SFNO (model.noise_channels > 0)"}

    @classmethod
    def check_inference_options(cls, config: ModelConfig, options: InferenceOptions, where: str) -> None:
        if options.noise_amplitude is not None and not config.noise_channels:
            raise InputError(f"rollout noise_amplitude={options.noise_amplitude:g} scales the noise of a stochastic "
                             f"SFNO (model.noise_channels > 0); {where} has none")

    @classmethod
    def from_config(cls, config: ModelConfig, grid: Grid, n_state: int, n_forcing: int,
                    options: InferenceOptions = InferenceOptions()) -> "SFNO":
        return cls(grid, n_state, n_forcing, embed_dim=config.embed_dim, num_layers=config.num_layers,
                   scale_factor=config.scale_factor, mlp_ratio=config.mlp_ratio,
                   hard_thresholding_fraction=config.hard_thresholding_fraction,
                   normalization=config.normalization, activation=config.activation, residual=config.residual,
                   big_skip=config.big_skip, pos_embed=config.pos_embed_kind if config.pos_embed else None,
                   drop_path_rate=config.drop_path_rate, encoder_layers=config.encoder_layers,
                   noise_channels=config.noise_channels, mlp_dropout=config.mlp_dropout,
                   noise_length_scales_km=config.noise_length_scales_km,
                   noise_autocorrelation=config.noise_autocorrelation,
                   noise_amplitude=1.0 if options.noise_amplitude is None else options.noise_amplitude,
                   sh_degree=config.sh_degree, sh_siren_layers=config.sh_siren_layers,
                   sh_siren_hidden=config.sh_siren_hidden, spectral_factorisation=config.spectral_factorisation,
                   spectral_rank=config.spectral_rank, transform_once=config.transform_once)

    def set_grid(self, grid: Grid) -> None:
        """Run on ``grid`` from now on (zero-shot resolution transfer): the transforms are rebuilt
        for it at the trained truncation (fewer degrees where ``grid`` resolves fewer), the
        spherical-harmonic position encoding is evaluated on it; the weights stay as they are.

        Raises
        ------
        InputError
            If the model has a learned position embedding the size of its training grid.
        """
        if isinstance(self.pos_embed, PositionEmbedding) and (grid.nlat, grid.nlon) != self.grid.shape:
            raise InputError(f"this SFNO's learned position embedding is tied to its {self.grid} grid; a model that "
                             f"runs on {grid} needs pos_embed_kind 'spherical-harmonics' (or no position embedding)")
        device = self.residual_scale.device
        transforms = _transforms(grid, self.scale_factor, self.hard_thresholding_fraction, max_modes=self.modes)
        for transform in transforms:
            transform.to(device)
        modes = transforms[3].lmax
        self.noise_modes = modes
        if self.noise_length_scales_km is not None:
            self.noise_sigma = noise_degree_sigma(modes, self.noise_length_scales_km)
        if isinstance(self.pos_embed, SphericalHarmonicEncoding):
            self.pos_embed.set_grid(grid)
        if self.transform_once:
            self.sht, self.isht = transforms[0], transforms[1]
            if self.noise is not None:
                self.noise_scale = torch.as_tensor(white_noise_scale(self.isht, self.noise_sigma)).to(device)
        else:
            last = len(self.blocks) - 1
            for i, block in enumerate(self.blocks):
                assert isinstance(block, SFNOBlock)
                block.set_transforms(transforms[0] if i == 0 else transforms[2],
                                     transforms[1] if i == last else transforms[3], self.noise_sigma)
        self.grid = grid

    @property
    def noise_channels(self) -> int:
        return self._noise_channels

    @property
    def noise_autocorrelation(self) -> float:
        return self._noise_autocorrelation

    @property
    def noise_amplitude(self) -> float:
        return self._noise_amplitude

    def draw_noise(self, generators: list[torch.Generator]) -> torch.Tensor:
        """Isotropic noise on the sphere for a batch: normal spherical-harmonic coefficients
        ``(M, L, B, 2, K)`` up to the model's truncation, one generator per sample, unit
        variance (white) or with the channels' length scales (each block synthesises
        unit-variance fields on its own grid from them)."""
        if not self._noise_channels:
            raise NotImplementedError("this SFNO is deterministic (model.noise_channels = 0)")
        m = l = self.noise_modes
        device = self.residual_scale.device
        noise = torch.cat([torch.randn(m, l, 1, 2, self._noise_channels, generator=g) for g in generators], dim=2)
        if self.noise_sigma is not None:
            noise = noise * self.noise_sigma[None, :, None, None, :]
        return noise.to(device)

    def network(self, x: torch.Tensor, noise: torch.Tensor | None = None, step: torch.Tensor | None = None,
                masks: DropoutMasks | None = None, members: int = 1) -> torch.Tensor:
        """``(B, C_in, H, W) -> (B, C_out, H, W)``; ``step`` ``(B,)`` conditions a step-conditioned
        SFNO (ignored otherwise), ``masks`` draws its dropout masks from per-sample generators.
        ``members`` > 1: ``(B, C_in, H, W) -> (B x members, C_out, H, W)`` with ``noise``, ``step``
        and ``masks`` per member (:meth:`ensemble_forward`)."""
        x = x.permute(0, 2, 3, 1)  # channels-last view; the encoder's GEMM reads it as is
        h = self.pos_embed(self.encoder(x))
        if self.transform_once:
            return self._transform_once(x, h, noise, members)
        embedding = self.step_embedding(step) if self.step_embedding is not None and step is not None else None
        for i, block in enumerate(self.blocks):
            h = block(h, noise, embedding, masks, members if i == 0 else 1)
        if members > 1:
            x = x.repeat_interleave(members, dim=0)
        if self.big_skip:
            h = torch.cat([h, x], dim=-1)
        return self.decoder(h).permute(0, 3, 1, 2).contiguous()

    def ensemble_forward(self, state: torch.Tensor, forcings: torch.Tensor, noise: torch.Tensor | None,
                         members: int) -> torch.Tensor:
        """:meth:`forward` of every sample repeated ``members`` times (members fastest, as
        ``state.repeat_interleave(members, 0)``), ``noise`` per member, ``(B x members, C, H, W)``:
        the same numbers, with the work that does not depend on the noise done once per sample
        (the encoder and the first block's transforms; for transform-once blocks everything
        before the decoder). The step's constraints are the caller's, as for :meth:`forward`."""
        self._check_inputs(state, forcings)
        x = torch.cat([state, forcings], dim=1) if self.n_forcing else state
        out = self.network(x, noise, members=members)
        state = state.repeat_interleave(members, dim=0)
        return state + out * self.residual_scale.to(out.dtype).view(1, -1, 1, 1) if self.residual else out

    def _transform_once(self, x: torch.Tensor, h: torch.Tensor, noise: torch.Tensor | None,
                        members: int = 1) -> torch.Tensor:
        """T1: one transform of the encoded ``h`` ``(B, H, W, C)``, the blocks on its coefficients, one inverse."""
        s = self.sht(h)
        for block in self.blocks:
            s = block(s)
        h = self.isht(s)
        if members > 1:
            h, x = h.repeat_interleave(members, dim=0), x.repeat_interleave(members, dim=0)
        if self.noise is not None and noise is not None:
            h = self.noise(h, self.isht(noise.to(h.dtype)) * self.noise_scale)
        if self.big_skip:
            h = torch.cat([h, x], dim=-1)
        return self.decoder(h).permute(0, 3, 1, 2).contiguous()


def _transforms(grid: Grid, scale_factor: int, fraction: float,
                max_modes: int | None = None) -> tuple[ChannelsLastRealSHT, ChannelsLastInverseRealSHT,
                                                       ChannelsLastRealSHT, ChannelsLastInverseRealSHT]:
    """(SHT from the full grid, inverse to the full grid, SHT and inverse on the internal grid),
    truncated at the internal grid's degrees, at most ``max_modes``."""
    if scale_factor < 1:
        raise InputError(f"model scale_factor must be >= 1, got {scale_factor}")
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"hard_thresholding_fraction must be in (0, 1], got {fraction}")
    h, w = (grid.nlat - 1) // scale_factor + 1, grid.nlon // scale_factor
    modes = int(min(h, w // 2) * fraction)
    if max_modes is not None:
        modes = min(modes, max_modes)
    if h < 2 or w < 4 or modes < 1:   # the internal grid is a Grid (at least 2 x 4 points)
        raise InputError(f"scale_factor {scale_factor} is too large for grid {grid}: the internal grid would be "
                         f"{h}x{w}; use a smaller scale_factor")
    return (ChannelsLastRealSHT(grid.nlat, grid.nlon, modes, modes, grid.kind),
            ChannelsLastInverseRealSHT(grid.nlat, grid.nlon, modes, modes, grid.kind),
            ChannelsLastRealSHT(h, w, modes, modes, INTERNAL_GRID),
            ChannelsLastInverseRealSHT(h, w, modes, modes, INTERNAL_GRID))
