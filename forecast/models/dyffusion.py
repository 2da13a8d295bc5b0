r"""Spherical DYffusion (Rühling Cachay et al. 2024): two step-conditioned SFNOs whose
dropout, kept on at inference, makes the forecast an ensemble.

With :math:`h` the horizon (the model step in store steps: 6 for a 6 h step on an hourly
store), states normalised, forcings :math:`g` at the step's start and :math:`s` the
``residual_scale`` (std of the normalised :math:`h`-step tendency):

Interpolator (MSE on the store's states between :math:`t` and :math:`t+h`), :math:`i \in 1..h-1`:

.. math:: I(x_t, x_{t+h}, i) = x_t + \tfrac{i}{h}(x_{t+h} - x_t)
          + s \odot f_I([x_t, x_{t+h}, g], i; \text{dropout})

Forecaster (L1 on :math:`x_{t+h}`), :math:`i \in 0..h-1`, trained on the frozen, still
stochastic interpolator's states :math:`\tilde x = x_t` for :math:`i = 0`, else
:math:`I(x_t, x_{t+h}, i)`:

.. math:: F(\tilde x, i) = \tilde x + s \odot f_F([\tilde x, g], i)

Cold sampling of one model step from :math:`s_0 = x_t`, for :math:`n = 0 .. h-1`:

.. math:: \hat x = F(s_n, n), \qquad s_{n+1} = s_n + I(x_t, \hat x, n+1) - I(x_t, \hat x, n),

with :math:`I(\cdot, \cdot, 0) = s_0` and :math:`I(\cdot, \hat x, h) = \hat x`. The step's
result is :math:`s_h`; :math:`s_1 .. s_{h-1}` are the states at the store's times in between
(:meth:`DYffusion.sample` returns them). That is :math:`h` forecaster and :math:`2(h-1)`
interpolator calls per model step (16 for :math:`h = 6`; the two interpolator calls of
one :math:`n` run as one batch).

The only randomness is the interpolator's dropout (MLP dropout and drop path). Its masks
come from one generator per member (:class:`~forecast.models.layers.DropoutMasks`), seeded
by :meth:`DYffusion.draw_noise` from the rollout's or the training sample's generator; so
the same seed gives the same ensemble, bit for bit, however members are batched.

At inference a second, *member* dropout (rate ``member_dropout``, 0 in training) can
multiply each mask: its masks are drawn from a seed of the member's own, the same at every
step, so each member keeps one network of the dropout ensemble for its whole forecast.
The paper's fresh masks give each step an error of about fixed size that the next steps
partly undo; the member masks add an error that persists and grows with the flow, as a
model's own error does (``benchmarks/skill.py`` compares the two: ``docs/skill.md``).

Reference: S. Rühling Cachay, B. Henn, O. Watt-Meyer, C. S. Bretherton, R. Yu (2024),
"Probabilistic Emulation of a Global Climate Model with Spherical DYffusion", NeurIPS;
https://github.com/Rose-STL-Lab/spherical-dyffusion.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from forecast.config import ModelConfig
from forecast.models.base import InferenceOptions, PrognosticModel
from forecast.models.layers import DropoutMasks
from forecast.models.sfno import SFNO
from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["DYffusion", "cold_sample"]


def cold_sample(x0: torch.Tensor, horizon: int, forecaster, interpolator, intermediate: bool = False) -> torch.Tensor:
    r"""The cold-sampling loop of the module docstring.

    ``forecaster(s, n)`` and ``interpolator(x0, xhat, i)`` take states ``(B, ...)`` and an
    integer step; ``interpolator`` may be called with ``x0``/``xhat`` stacked twice on the
    batch and ``i`` a ``(2B,)`` tensor (the two calls of one :math:`n`). Returns
    :math:`s_h` ``(B, ...)``, or with ``intermediate`` the path :math:`s_1 .. s_h`
    ``(B, h, ...)``.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    b = x0.shape[0]
    state, path = x0, []
    for n in range(horizon):
        xhat = forecaster(state, torch.full((b,), n, dtype=torch.long))
        if n == 0:
            at_next = interpolator(x0, xhat, torch.full((b,), 1, dtype=torch.long)) if horizon > 1 else xhat
            state = at_next                                   # s_0 + I(., ., 1) - s_0
        elif n < horizon - 1:
            steps = torch.cat([torch.full((b,), n + 1, dtype=torch.long), torch.full((b,), n, dtype=torch.long)])
            at_next, at_now = interpolator(torch.cat([x0, x0]), torch.cat([xhat, xhat]), steps).chunk(2)
            state = state + at_next - at_now
        else:
            state = state + xhat - interpolator(x0, xhat, torch.full((b,), n, dtype=torch.long))
        if intermediate:
            path.append(state)
    return torch.stack(path, dim=1) if intermediate else state


def _generators(seeds: torch.Tensor) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(int(s)) for s in seeds.tolist()]


class DYffusion(PrognosticModel):
    """Spherical DYffusion: interpolator and forecaster SFNOs (module docstring).

    Parameters
    ----------
    grid, n_state, n_forcing
        See :class:`~forecast.models.base.PrognosticModel`.
    sfno
        Keyword arguments of both :class:`~forecast.models.sfno.SFNO` networks (size, grid,
        activation, ...).
    dropout, drop_path
        The interpolator's MLP dropout and drop-path rate (0.1 and 0.1 in the paper); the
        ensemble's spread comes from them.
    member_dropout
        The rate of the member masks at inference (module docstring; 0: none, as the paper).
    """

    def __init__(self, grid: Grid, n_state: int, n_forcing: int, *, sfno: dict, dropout: float = 0.1,
                 drop_path: float = 0.1, member_dropout: float = 0.0) -> None:
        super().__init__(grid, n_state, n_forcing, residual=False)
        self.interpolator = SFNO(grid, n_state, n_state + n_forcing, residual=False, step_conditioning=True,
                                 mlp_dropout=dropout, drop_path_rate=drop_path, **sfno)
        self.forecaster = SFNO(grid, n_state, n_forcing, residual=False, step_conditioning=True, **sfno)
        self.dropout, self.drop_path = dropout, drop_path
        if not 0.0 <= member_dropout < 1.0:
            raise InputError(f"member_dropout must be in [0, 1), got {member_dropout}")
        self.member_dropout = member_dropout
        # model step in store steps; set from the data by training, carried by checkpoints
        self.register_buffer("horizon_steps", torch.zeros((), dtype=torch.long))

    horizon_steps: torch.Tensor   # buffer: the model step in store steps, () int64
    trained_in_stages = True
    takes_hyperdiffusion = False
    inference_options = {
        "dropout": "an inference dropout of a DYffusion interpolator (its MLP dropout and drop path)",
        "member_dropout": "an inference dropout of a DYffusion interpolator (masks each member keeps)",
    }

    @classmethod
    def from_config(cls, config: ModelConfig, grid: Grid, n_state: int, n_forcing: int,
                    options: InferenceOptions = InferenceOptions()) -> "DYffusion":
        if config.noise_channels:
            raise InputError("model.noise_channels is for the noise-conditioned SFNO; DYffusion's spread comes from "
                             "its interpolator's dropout (model.mlp_dropout, model.drop_path_rate): set it to 0")
        sfno = dict(embed_dim=config.embed_dim, num_layers=config.num_layers, scale_factor=config.scale_factor,
                    mlp_ratio=config.mlp_ratio, hard_thresholding_fraction=config.hard_thresholding_fraction,
                    normalization=config.normalization, activation=config.activation, big_skip=config.big_skip,
                    pos_embed=config.pos_embed_kind if config.pos_embed else None,
                    encoder_layers=config.encoder_layers)
        dropout, drop_path = ((config.mlp_dropout, config.drop_path_rate) if options.dropout is None
                              else (options.dropout, options.dropout))
        return cls(grid, n_state, n_forcing, sfno=sfno, dropout=dropout, drop_path=drop_path,
                   member_dropout=options.member_dropout or 0.0)

    # -- horizon ----------------------------------------------------------------------------
    @property
    def horizon(self) -> int:
        """:math:`h`, the model step in store steps (the interpolator's states per step)."""
        h = int(self.horizon_steps)
        if h < 1:
            raise InputError("this DYffusion model has no horizon yet (a model trains it from its store: "
                             "train.step_hours / the store's time step)")
        return h

    def set_horizon(self, steps: int) -> None:
        if steps < 2:
            raise InputError(f"DYffusion needs states between the model's steps: the model step is {steps} store "
                             "step(s); use a store with a finer time step than train.step_hours (e.g. hourly data "
                             "for a 6 h step)")
        self.horizon_steps.fill_(int(steps))

    # -- noise ------------------------------------------------------------------------------
    @property
    def stochastic(self) -> bool:
        return self.dropout > 0 or self.drop_path > 0 or self.member_dropout > 0

    def draw_noise(self, generators: list[torch.Generator]) -> torch.Tensor:
        """One 62-bit seed per sample ``(B,)`` int64: it seeds the sample's dropout masks."""
        return torch.cat([torch.randint(0, 2**62, (1,), generator=g) for g in generators])

    def step_noise(self, innovation_at: Callable[[int | None], torch.Tensor]) -> torch.Tensor:
        """The seeds of one step's masks ``(B,)``; with member dropout ``(B, 2)``: this step's
        seed and the member's (``innovation_at(None)``, the same at every step)."""
        seeds = innovation_at(0)
        if self.member_dropout <= 0.0:
            return seeds
        return torch.stack([seeds, innovation_at(None)], dim=1)

    def masks(self, noise: torch.Tensor | None) -> DropoutMasks | None:
        """The dropout masks of a batch from :meth:`step_noise`'s seeds (None: no dropout)."""
        if noise is None:
            return None
        if noise.dim() == 1:
            return DropoutMasks(_generators(noise))
        return DropoutMasks(_generators(noise[:, 0]), _generators(noise[:, 1]), self.member_dropout)

    # -- the two networks ---------------------------------------------------------------------
    def interpolate(self, x0: torch.Tensor, xh: torch.Tensor, forcings: torch.Tensor, step: torch.Tensor,
                    masks: DropoutMasks | None = None) -> torch.Tensor:
        """:math:`I(x_t, x_{t+h}, i)`: states ``(B, C, H, W)``, forcings ``(B, F, H, W)``, ``step`` ``(B,)``."""
        fraction = (step.to(x0.dtype) / self.horizon).view(-1, 1, 1, 1).to(x0.device)
        net = self.interpolator.network(torch.cat([x0, xh, forcings], dim=1), step=step.to(x0.device), masks=masks)
        return x0 + fraction * (xh - x0) + self._scale(net) * net

    def forecast(self, x: torch.Tensor, forcings: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """:math:`F(\\tilde x, i)`: the state at :math:`t+h` from the state at :math:`t+i`."""
        net = self.forecaster.network(torch.cat([x, forcings], dim=1), step=step.to(x.device))
        return x + self._scale(net) * net

    def _scale(self, like: torch.Tensor) -> torch.Tensor:
        return self.residual_scale.to(like.dtype).view(1, -1, 1, 1)

    def sample(self, state: torch.Tensor, forcings: torch.Tensor, noise: torch.Tensor | None = None,
               intermediate: bool = False) -> torch.Tensor:
        """One model step by cold sampling: ``(B, C, H, W)`` -> ``(B, C, H, W)``, or with
        ``intermediate`` the states at every store step of it ``(B, h, C, H, W)`` (the last is
        the step's result). Without ``noise`` the dropout is off (the mean-field step)."""
        self._check_inputs(state, forcings)
        masks = self.masks(noise)
        # cold_sample stacks the two interpolator calls of one n on the batch: each member's
        # generator then draws the masks of both, in order
        doubled = None if masks is None else masks.doubled()

        def interpolator(x0: torch.Tensor, xhat: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
            if x0.shape[0] == forcings.shape[0]:
                return self.interpolate(x0, xhat, forcings, step, masks)
            return self.interpolate(x0, xhat, torch.cat([forcings, forcings]), step, doubled)

        return cold_sample(state, self.horizon, lambda s, n: self.forecast(s, forcings, n), interpolator, intermediate)

    def network(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        state, forcings = x[:, : self.n_state], x[:, self.n_state:]
        return self.sample(state, forcings, noise)
