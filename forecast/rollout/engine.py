r"""The autoregressive step of an ensemble: members batched through one model or several.

For members :math:`m = 1..M` (normalised states :math:`x_m`, ``(M, C, H, W)``) and a
model step :math:`\Delta t`,

.. math:: x_m(t + \Delta t) = F_{k(m)}\big(x_m(t), g(t)\big), \qquad k(m) = m \bmod K,

where :math:`g(t)` are the forcings at the *input* time (recomputed for every valid
time, :func:`forecast.forcings.compute_forcings`) and :math:`F_k` the :math:`K`
checkpoints' models (members spread round-robin over them). The members of a model go
through it in batches of at most ``batch_members``; the batches never depend on the
lead time or on which process steps a block of members, so a resumed or distributed
run computes exactly what an uninterrupted single-process one does.

Every new state goes through its model's chain of step constraints (hyperdiffusion, spectral
cap, global-mean conservation: :mod:`forecast.models.constraints`). After each step :class:`BoundsCheck`
stops the run on NaN, inf or values outside physical bounds, naming the member and variable.
"""

from __future__ import annotations

import time as _time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from forecast.forcings import compute_forcings
from forecast.models.base import PrognosticModel, seeded_generator
from forecast.models.constraints import StepConstraints, constrained_step
from forecast.models.innovations import InnovationMemo
from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["RolloutEngine", "BoundsCheck", "BlowUpError", "noise_generator"]


class BlowUpError(RuntimeError):
    """The forecast left the physical range (NaN, inf or out of bounds); ``step`` is the model
    step (from the init time) at which it did, where known."""

    def __init__(self, message: str, step: float | None = None) -> None:
        super().__init__(message)
        self.step = step


class BoundsCheck:
    r"""Per-variable bounds on the normalised state.

    Variable :math:`c` must stay finite and within
    :math:`[\max(-n_\sigma, (a_c - \mu_c)/\sigma_c), \min(n_\sigma, (b_c - \mu_c)/\sigma_c)]`,
    i.e. within :math:`\mu_c \pm n_\sigma \sigma_c` and within the physical bounds
    :math:`[a_c, b_c]` given for it.

    Parameters
    ----------
    variables, mean, std
        The model's variables and their ``(C,)`` statistics (physical units).
    n_std
        Half-width of the allowed range in standard deviations.
    bounds
        Optional ``{variable: (low, high)}`` in physical units.
    """

    def __init__(self, variables: Sequence[str], mean: np.ndarray, std: np.ndarray, n_std: float,
                 bounds: dict[str, tuple[float, float]] | None = None):
        if n_std <= 0:
            raise InputError(f"bounds_std must be > 0, got {n_std}")
        unknown = sorted(set(bounds or {}) - set(variables))
        if unknown:
            raise InputError(f"bounds given for unknown variable(s) {', '.join(unknown)}; "
                             f"the model's variables are {', '.join(variables)}")
        low, high = np.full(len(variables), -float(n_std)), np.full(len(variables), float(n_std))
        for c, name in enumerate(variables):
            if bounds and name in bounds:
                a, b = bounds[name]
                low[c] = max(low[c], (a - mean[c]) / std[c])
                high[c] = min(high[c], (b - mean[c]) / std[c])
        self.variables = list(variables)
        self.low = torch.as_tensor(low, dtype=torch.float32)
        self.high = torch.as_tensor(high, dtype=torch.float32)

    def violation(self, state: torch.Tensor) -> tuple[int, str, str] | None:
        """``(member, variable, what)`` of the first bad value of ``state (M, C, H, W)``, or None.

        Reduces each field to its minimum and maximum first (NaN propagates through both),
        so the check costs two reductions and one device sync per step.
        """
        if self.low.device != state.device:
            self.low, self.high = self.low.to(state.device), self.high.to(state.device)
        low, high = self.low, self.high
        flat = state.flatten(2)
        smallest, largest = flat.amin(dim=2), flat.amax(dim=2)  # (M, C); NaN propagates
        nonfinite = ~(torch.isfinite(smallest) & torch.isfinite(largest))
        bad = nonfinite | (smallest < low) | (largest > high)
        if not bool(bad.any()):
            return None
        member, channel = (int(i) for i in torch.nonzero(bad)[0])
        kind = "NaN or inf" if bool(nonfinite[member, channel]) else "values outside physical bounds"
        return member, self.variables[channel], kind


class RolloutEngine:
    """Advances ensembles of normalised states ``(M, C, H, W)`` in steps of ``time_step``.

    Parameters
    ----------
    models
        One model per checkpoint (eval mode, on ``device``).
    grid
        The model grid.
    time_step
        The models' time step.
    static
        ``(S, H, W)`` normalised static fields of the checkpoints, or None.
    batch_members
        Largest number of members per forward pass (None: all of a model's members).
    device
        Where the states and models live.
    constraints
        One chain per model (:func:`~forecast.models.constraints.build_step_constraints`), applied
        to every new state of that model (and to DYffusion's intermediate ones); None: none.
    """

    def __init__(self, models: Sequence[PrognosticModel], grid: Grid, time_step: pd.Timedelta,
                 static: np.ndarray | None, batch_members: int | None, device: torch.device,
                 constraints: Sequence[StepConstraints] | None = None):
        if not models:
            raise InputError("no checkpoint given; pass --checkpoint CKPT")
        if batch_members is not None and batch_members < 1:
            raise InputError(f"batch_members must be >= 1, got {batch_members}")
        self.models = list(models)
        self.grid, self.time_step, self.static = grid, pd.Timedelta(time_step), static
        self.batch_members, self.device = batch_members, device
        if constraints is not None and len(constraints) != len(self.models):
            raise ValueError(f"{len(constraints)} chains of step constraints for {len(self.models)} models")
        self.constraints = [c.to(device) for c in constraints or [StepConstraints() for _ in self.models]]
        self._forcing_cache: tuple[np.datetime64, torch.Tensor] | None = None
        # (model, noise seed, members, valid time) -> innovation: a step draws one, not K + 1
        # (the batches of members of one step each need their last K + 1; a long rollout keeps no more)
        self._innovations = InnovationMemo(self._draw_innovation, max_items=0)
        self.forward_seconds = 0.0  # time inside the models' forward passes (for benchmarks)

    def groups(self, members: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """``(model index, positions in members)`` batches: member ``m`` goes through model
        ``m mod K``; each model's members in chunks of at most ``batch_members``."""
        out: list[tuple[int, torch.Tensor]] = []
        for k in range(len(self.models)):
            positions = torch.nonzero(members % len(self.models) == k).flatten()
            size = self.batch_members or max(len(positions), 1)
            out.extend((k, chunk) for chunk in torch.split(positions, size) if len(chunk))
        return out

    def forcings(self, time: pd.Timestamp) -> torch.Tensor:
        """Forcings at ``time``, ``(1, F, H, W)`` on the device (the last one is cached)."""
        key = np.datetime64(pd.Timestamp(time).to_datetime64(), "ns")
        if self._forcing_cache is None or self._forcing_cache[0] != key:
            value = compute_forcings(self.grid, np.array([key]), self.static).to(self.device)
            self._forcing_cache = (key, value)
        return self._forcing_cache[1]

    @torch.inference_mode()
    def step(self, state: torch.Tensor, time: pd.Timestamp, members: torch.Tensor | None = None,
             noise_seed: int | None = None, intermediate: bool = False) -> torch.Tensor:
        """One step from ``time``: ``(B, C, H, W) -> (B, C, H, W)``, or with ``intermediate``
        the states at every store step of it ``(B, h, C, H, W)`` (:meth:`PrognosticModel.sample`),
        the last being the step's result.

        ``members`` are the ensemble indices of the ``B`` states (default ``0 .. B-1``):
        they choose each state's model, so a block of members steps as it would in the
        whole ensemble. A stochastic model (``model.stochastic``) draws its noise for
        member ``m`` at ``time`` from a generator seeded by ``(noise_seed, m, time)`` only
        (:func:`noise_generator`), so batching, processes and resuming do not change it;
        without ``noise_seed`` it takes its noise-free step.
        """
        forcing = self.forcings(time)
        members = torch.arange(state.shape[0]) if members is None else members
        groups = self.groups(members)
        self._innovations.reserve(len(groups) * (max(m.noise_lags for m in self.models) + 2))
        if len(groups) == 1:   # one model, one batch: no copies
            k = groups[0][0]
            return self._forward(k, state, forcing, self._noise(k, members, time, noise_seed), intermediate)
        out: torch.Tensor | None = None
        for k, positions in groups:
            idx = positions.to(state.device)
            y = self._forward(k, state[idx], forcing, self._noise(k, members[positions], time, noise_seed), intermediate)
            if out is None:
                out = y.new_empty((state.shape[0],) + tuple(y.shape[1:]))
            out[idx] = y
        assert out is not None
        return out

    def _noise(self, k: int, members: torch.Tensor, time: pd.Timestamp, noise_seed: int | None) -> torch.Tensor | None:
        model = self.models[k]
        if noise_seed is None or not model.stochastic:
            return None
        ids = tuple(members.tolist())
        return model.step_noise(lambda lag: self._innovations(
            (k, noise_seed, ids, None if lag is None else time - lag * self.time_step)))

    def _draw_innovation(self, name: tuple) -> torch.Tensor:
        k, noise_seed, ids, time = name
        return self.models[k].draw_noise([noise_generator(noise_seed, m, time) for m in ids])

    def _forward(self, k: int, state: torch.Tensor, forcing: torch.Tensor, noise: torch.Tensor | None = None,
                 intermediate: bool = False) -> torch.Tensor:
        start = _time.perf_counter()
        forcing = forcing.expand(state.shape[0], -1, -1, -1)
        out = constrained_step(self.models[k], self.constraints[k], state, forcing, noise, intermediate)
        if state.device.type == "cuda":
            torch.cuda.synchronize(state.device)
        self.forward_seconds += _time.perf_counter() - start
        return out

    @property
    def substeps(self) -> int:
        """States per model step that :meth:`step` can return with ``intermediate`` (the
        models' common DYffusion horizon); 1 for a model without intermediate states."""
        horizons = {m.horizon for m in self.models}
        if len(horizons) != 1:
            raise InputError(f"the checkpoints' models have different numbers of intermediate states {sorted(horizons)}")
        return horizons.pop()

    def advance(self, state: torch.Tensor, time: pd.Timestamp, n_steps: int,
                members: torch.Tensor | None = None, noise_seed: int | None = None) -> torch.Tensor:
        """``n_steps`` steps from ``time``."""
        for i in range(n_steps):
            state = self.step(state, pd.Timestamp(time) + i * self.time_step, members, noise_seed)
        return state


def noise_generator(noise_seed: int, member: int, time: pd.Timestamp | None) -> torch.Generator:
    """The generator of member ``member``'s model noise for the step from ``time``; with
    ``time`` None the member's generator of no step (the same for its whole forecast)."""
    if time is None:
        return seeded_generator(noise_seed, member)
    return seeded_generator(noise_seed, member, int(pd.Timestamp(time).value // 1_000_000_000))
