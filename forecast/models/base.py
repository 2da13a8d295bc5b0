r"""The one interface of the prognostic models, and model-size helpers.

A :class:`PrognosticModel` advances the normalised state by one time step:

.. math:: x_{t+\Delta t} = \begin{cases} x_t + s \odot f([x_t, g_t]) & \text{residual} \\
                                          f([x_t, g_t]) & \text{otherwise} \end{cases}

where :math:`g_t` are the forcings evaluated at the input time, :math:`[\cdot,\cdot]`
concatenates channels and :math:`s` (``residual_scale``, ``(C,)``) is the standard
deviation of the normalised one-step tendency per channel (set by training from the
data, 1 until then). With it the network predicts increments of unit variance: a 6 h
step changes a normalised field by a few tenths only, and a network asked for that
directly learns it slowly (the same reason ACE and GraphCast normalise tendencies).
It is a buffer, so checkpoints carry it. Subclasses implement :meth:`PrognosticModel.network`
(:math:`f`) and :meth:`PrognosticModel.from_config`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from forecast.config import ModelConfig
from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["PrognosticModel", "InferenceOptions", "count_parameters", "estimate_flops"]

#: the state-dict keys of the hyperdiffusion in checkpoints written before it left the model
LEGACY_HYPERDIFFUSION_PREFIX = "hyperdiffusion."


@dataclass(frozen=True)
class InferenceOptions:
    """Settings of a model at inference that carry no weights (``rollout.dropout``,
    ``rollout.member_dropout``, ``rollout.noise_amplitude``); None keeps what the model was
    trained with. Each architecture names those it takes in :attr:`PrognosticModel.inference_options`;
:func:`forecast.models.build_model` refuses the others.

    Attributes
    ----------
    dropout
        DYffusion: its interpolator's MLP dropout and drop-path rate, in [0, 1).
    member_dropout
        DYffusion: the rate of the masks each member keeps for its whole forecast, in [0, 1).
    noise_amplitude
        Stochastic SFNO: the factor on its noise, > 0.
    """

    dropout: float | None = None
    member_dropout: float | None = None
    noise_amplitude: float | None = None

    def __post_init__(self) -> None:
        for name in ("dropout", "member_dropout"):
            rate = getattr(self, name)
            if rate is not None and not 0.0 <= rate < 1.0:
                raise InputError(f"rollout {name} must be in [0, 1), got {rate}")
        if self.noise_amplitude is not None and not self.noise_amplitude > 0:
            raise InputError(f"rollout noise_amplitude must be > 0, got {self.noise_amplitude}")

    def given(self) -> dict[str, float]:
        """The options set (not None), by name."""
        return {name: value for name, value in asdict(self).items() if value is not None}


class PrognosticModel(nn.Module, ABC):
    """A one-step model on a fixed grid.

    Parameters
    ----------
    grid
        The grid of states and forcings.
    n_state, n_forcing
        Number of state channels ``C`` (also the output channels) and forcing channels ``F``.
    residual
        Predict the increment: ``output = state + network(...)`` (normalised units).
    """

    # buffers (registered in __init__), typed for the checker
    residual_scale: torch.Tensor

    def __init__(self, grid: Grid, n_state: int, n_forcing: int, residual: bool) -> None:
        super().__init__()
        if n_state < 1 or n_forcing < 0:
            raise InputError(f"a model needs at least one state variable and no negative forcing count "
                             f"(got n_state={n_state}, n_forcing={n_forcing})")
        self.grid = grid
        self.n_state = n_state
        self.n_forcing = n_forcing
        self.residual = residual
        self.register_buffer("residual_scale", torch.ones(n_state))

    #: the :class:`InferenceOptions` this architecture takes: field name -> what it does there
    inference_options: ClassVar[dict[str, str]] = {}
    #: trained in stages of one model step each on the store's states inside a step, its
    #: :attr:`horizon` set from the data (DYffusion), rather than on rollouts of whole steps
    trained_in_stages: ClassVar[bool] = False
    #: whether ``model.hyperdiffusion_efold_hours`` may filter its steps (not for a model whose
    #: networks are trained on states rather than on steps: DYffusion)
    takes_hyperdiffusion: ClassVar[bool] = True

    @classmethod
    @abstractmethod
    def from_config(cls, config: ModelConfig, grid: Grid, n_state: int, n_forcing: int,
                    options: InferenceOptions = InferenceOptions()) -> "PrognosticModel":
        """Build the model that ``config`` describes, with the inference ``options`` (accepted
        by :meth:`check_inference_options`)."""

    @classmethod
    def check_inference_options(cls, config: ModelConfig, options: InferenceOptions, where: str) -> None:
        """Refuse an inference option that this ``config`` of the architecture does not take
        (``where`` names the model in the message); the options the architecture takes at all
        are checked by :func:`forecast.models.check_inference_options`."""

    @property
    def horizon(self) -> int:
        """States per model step that :meth:`sample` returns with ``intermediate`` (1: the step's
        result only; DYffusion: its store steps per model step)."""
        return 1

    def set_horizon(self, steps: int) -> None:
        """Tell the model its step is ``steps`` store steps (a model without states between its
        steps ignores it)."""

    def sample(self, state: torch.Tensor, forcings: torch.Tensor, noise: torch.Tensor | None = None,
               intermediate: bool = False) -> torch.Tensor:
        """One step, ``(B, C, H, W)``; with ``intermediate`` the states at every store step of it
        ``(B, h, C, H, W)``, :math:`h` = :attr:`horizon` (the last is the step's result)."""
        new = self(state, forcings, noise)
        return new[:, None] if intermediate else new

    @abstractmethod
    def network(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """The learned map ``f``: ``(B, C + F, H, W) -> (B, C, H, W)``; ``noise`` conditions a
        stochastic model (:attr:`noise_channels` > 0) and is None for a deterministic one."""

    @property
    def noise_channels(self) -> int:
        """Channels of the noise a stochastic model takes (0: deterministic)."""
        return 0

    @property
    def stochastic(self) -> bool:
        """Whether the model's step is random given :meth:`draw_noise`'s noise (a
        noise-conditioned SFNO, or DYffusion with dropout at inference)."""
        return self.noise_channels > 0

    def draw_noise(self, generators: list[torch.Generator]) -> torch.Tensor:
        """Noise for a batch, one generator per sample (a stochastic model overrides this)."""
        raise NotImplementedError(f"{type(self).__name__} takes no noise")

    @property
    def noise_autocorrelation(self) -> float:
        r""":math:`\phi` of the noise's AR(1) in time (0: fresh every step)."""
        return 0.0

    @property
    def noise_amplitude(self) -> float:
        """Factor on the noise :meth:`step_noise` gives (1: as trained)."""
        return 1.0

    @property
    def noise_lags(self) -> int:
        r""":math:`K`, the innovations :meth:`step_noise` sums: the smallest with
        :math:`\phi^K < 10^{-3}` (0 for noise fresh every step)."""
        phi = self.noise_autocorrelation
        return 0 if phi == 0.0 else max(1, math.ceil(math.log(1e-3) / math.log(phi)))

    def step_noise(self, innovation_at: Callable[[int | None], torch.Tensor]) -> torch.Tensor:
        r"""The noise of one step from ``innovation_at(k)``, the batch's innovation
        :math:`\xi_{t-k}` drawn with :meth:`draw_noise` from the generators of ``k`` steps back
        (``k = 0``: this step's; the rollout names them by valid time, training by step, so they
        exist before the first step too); ``innovation_at(None)`` is each member's innovation of
        no step, the same for its whole run. Callers keep the innovations they have drawn
        (:class:`~forecast.models.innovations.InnovationMemo`): consecutive steps share all but one.

        With :math:`\phi` = :attr:`noise_autocorrelation` > 0 this is FourCastNet 3's AR(1)
        :math:`\eta_t = \phi\,\eta_{t-1} + \sqrt{1-\phi^2}\,\xi_t` started :math:`K` =
        :attr:`noise_lags` steps back from its stationary distribution (:math:`\eta_{t-K} = \xi_{t-K}`):

        .. math:: \eta_t = \phi^K \xi_{t-K} + \sqrt{1-\phi^2} \sum_{k<K} \phi^k \xi_{t-k},

        with :math:`\phi^K < 10^{-3}`. Each step's noise has the innovations' variance and a
        lag-one correlation of :math:`\phi(1 - \phi^{2K-2})`, and depends only on the
        generators, so no noise state has to be carried, saved or restored to resume.
        :attr:`noise_amplitude` multiplies the result.
        """
        phi, amplitude, lags = self.noise_autocorrelation, self.noise_amplitude, self.noise_lags
        if lags == 0:
            noise = innovation_at(0)
        else:
            noise = phi**lags * innovation_at(lags)
            for k in range(lags):
                noise = noise + math.sqrt(1.0 - phi**2) * phi**k * innovation_at(k)
        return noise * amplitude if amplitude != 1.0 else noise

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Next state ``(B, C, H, W)`` from ``state (B, C, H, W)`` and ``forcings (B, F, H, W)``.

        ``noise`` (from :meth:`draw_noise`) makes a stochastic model's step random; without
        it (None) the step is the model's noise-free, deterministic one. The constraints on the
        new state (hyperdiffusion, ...) follow it in :func:`forecast.models.constraints.constrained_step`.
        """
        self._check_inputs(state, forcings)
        x = torch.cat([state, forcings], dim=1) if self.n_forcing else state
        out = self.network(x, noise) if noise is not None else self.network(x)
        return state + out * self.residual_scale.to(out.dtype).view(1, -1, 1, 1) if self.residual else out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written while the hyperdiffusion was part of the model carry its tables; the
        # step's constraints (forecast.models.constraints) rebuild it from the config and the data
        for key in [k for k in state_dict if k.startswith(prefix + LEGACY_HYPERDIFFUSION_PREFIX)]:
            del state_dict[key]
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_residual_scale(self, scale) -> None:
        """Set :math:`s` (``(C,)``, positive) from the data: the std of the normalised tendency."""
        scale = torch.as_tensor(scale, dtype=self.residual_scale.dtype).reshape(-1)
        if scale.numel() != self.n_state or not bool(torch.all(torch.isfinite(scale) & (scale > 0))):
            raise ValueError(f"residual scale must be {self.n_state} positive finite values, got {scale.tolist()}")
        self.residual_scale.copy_(scale)

    def _check_inputs(self, state: torch.Tensor, forcings: torch.Tensor) -> None:
        expected = (self.grid.nlat, self.grid.nlon)
        if state.dim() != 4 or state.shape[1] != self.n_state or tuple(state.shape[2:]) != expected:
            raise ValueError(f"state has shape {tuple(state.shape)}; expected (B, {self.n_state}, {expected[0]}, {expected[1]})")
        if forcings.dim() != 4 or forcings.shape[1] != self.n_forcing or forcings.shape[0] != state.shape[0] \
                or tuple(forcings.shape[2:]) != expected:
            raise ValueError(f"forcings have shape {tuple(forcings.shape)}; expected "
                             f"({state.shape[0]}, {self.n_forcing}, {expected[0]}, {expected[1]})")


def seeded_generator(key: int, *counters: int) -> torch.Generator:
    """A CPU generator seeded by a 64-bit ``key`` and small ``counters`` (< 2**32) only: the
    model noise of a member and step, in training (sample seed, member, step) and in
    rollouts (init time's seed, member, valid time in s), depends on what names it, not on
    the process or the batch. A negative counter (a time before 1970, a step before the
    first) is written as three words (low, high, a marker), so it names a stream of its own."""
    words = [int(key) & 0xFFFFFFFF, (int(key) >> 32) & 0xFFFFFFFF]
    for c in (int(c) for c in counters):
        words += [c] if c >= 0 else [c & 0xFFFFFFFF, (c >> 32) & 0xFFFFFFFF, 0xFFFFFFFF]
    return torch.Generator().manual_seed(int(np.random.SeedSequence(words).generate_state(1)[0]))


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters, shared parameters counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def estimate_flops(model: PrognosticModel, grid: Grid, n_state: int, n_forcing: int, backward: bool = False,
                   constraints: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> int:
    """Floating-point operations of one batch-1 forward pass (``backward``: forward + backward
    estimated as 3x forward), followed by the step's ``constraints`` if given.

    Counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which counts matrix
    products and convolutions (2 flops per multiply-add) but not FFTs or element-wise
    operations, so this is a lower bound dominated by the dense layers and the Legendre
    transforms.
    """
    param = next(model.parameters())
    state = torch.zeros(1, n_state, grid.nlat, grid.nlon, dtype=param.dtype, device=param.device)
    forcings = torch.zeros(1, n_forcing, grid.nlat, grid.nlon, dtype=param.dtype, device=param.device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        new = model(state, forcings)
        if constraints is not None:
            constraints(new, state)
    flops = int(counter.get_total_flops())
    return 3 * flops if backward else flops
