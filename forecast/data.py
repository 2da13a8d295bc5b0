"""Training samples from a training store: a state, the forcings and the next ``n`` states.

A sample starting at store index :math:`t` with model step :math:`k` store steps and
rollout length :math:`n` is

* ``state``    ``(C, H, W)``    normalised state at :math:`t`,
* ``forcings`` ``(n, F, H, W)`` forcings at the input times :math:`t, t+k, ..., t+(n-1)k`,
* ``targets``  ``(n, C, H, W)`` normalised states at :math:`t+k, ..., t+nk`.

The set of start indices is fixed by the *largest* rollout length of the run, so the
length of the dataset (and therefore the sampler's permutation) does not change when the
curriculum lengthens the rollout; :attr:`TrajectoryDataset.rollout_steps` only selects
how many targets are returned.

Memory: a store whose selected variables take at most ``max_memory_bytes`` (2 GiB by
default) is read once and kept in memory, normalised, as float32; a larger one is read
lazily, one sample's time steps at a time, from the Zarr store (chunks of one time step).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr
from torch.utils.data import Dataset

from forecast.forcings import compute_forcings
from forecast.normalise import Normaliser
from pipelines.errors import InputError
from pipelines.grids import Grid

log = logging.getLogger("forecast.data")

DEFAULT_MAX_MEMORY_BYTES = 2 * 1024**3


class LazyStateArray:
    """Normalised ``(T, C, H, W)`` view of a store's variables, read on indexing."""

    def __init__(self, data: xr.Dataset, variables: list[str], normaliser: Normaliser) -> None:
        self.data, self.variables, self.normaliser = data, variables, normaliser
        first = data[variables[0]]
        self.shape = (first.sizes["time"], len(variables), first.sizes["lat"], first.sizes["lon"])

    def __getitem__(self, index: np.ndarray | list[int]) -> np.ndarray:
        index = np.asarray(index)
        stacked = np.stack([self.data[v].isel(time=index).transpose("time", "lat", "lon").values
                            for v in self.variables], axis=1)
        return self.normaliser.normalise_array(stacked)


def load_state_array(data: xr.Dataset, variables: list[str], normaliser: Normaliser,
                     max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES) -> np.ndarray | LazyStateArray:
    """Normalised states ``(T, C, H, W)``: in memory if small enough, else a lazy view."""
    missing = [v for v in variables if v not in data.data_vars]
    if missing:
        raise InputError(f"the store has no variable {', '.join(missing)}; it has {', '.join(map(str, data.data_vars))}")
    lazy = LazyStateArray(data, variables, normaliser)
    nbytes = int(np.prod(lazy.shape)) * 4
    if nbytes > max_memory_bytes:
        log.info("store is %.1f GiB: reading samples lazily", nbytes / 1024**3)
        return lazy
    return lazy[np.arange(lazy.shape[0])]


def model_step(store_step: pd.Timedelta, step_hours: float | None) -> int:
    """The model time step as a whole number of store steps (1 when ``step_hours`` is None)."""
    if step_hours is None:
        return 1
    ratio = pd.Timedelta(hours=step_hours) / store_step
    if step_hours <= 0 or abs(ratio - round(ratio)) > 1e-9:
        raise InputError(f"step_hours={step_hours:g} is not a positive multiple of the store's time step "
                         f"({store_step.total_seconds() / 3600:g} h)")
    return int(round(ratio))


def _between(times: pd.DatetimeIndex, start: str | None, end: str | None) -> np.ndarray:
    mask = np.ones(len(times), dtype=bool)
    if start is not None:
        mask &= times >= pd.Timestamp(start)
    if end is not None:
        mask &= times <= pd.Timestamp(end)
    return mask


def split_masks(times: pd.DatetimeIndex, train_start: str | None, train_end: str | None, val_start: str | None,
                val_end: str | None, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(T,)`` of training and validation times.

    Validation: ``[val_start, val_end]`` when either is given, else the last
    ``val_fraction`` of all times. Training: ``[train_start, train_end]`` minus validation.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction={val_fraction} must be in [0, 1)")
    if val_start is not None or val_end is not None:
        val = _between(times, val_start, val_end)
    else:
        n_val = int(round(len(times) * val_fraction))
        val = np.zeros(len(times), dtype=bool)
        if n_val:
            val[-n_val:] = True
    return _between(times, train_start, train_end) & ~val, val


def sample_starts(times: pd.DatetimeIndex, mask: np.ndarray, step: int, n_steps: int,
                  store_step: pd.Timedelta) -> np.ndarray:
    """Start indices ``t`` whose times ``t, t+step, ..., t+n_steps*step`` are all in ``mask``
    and evenly spaced by ``step`` store steps (gaps in the store are skipped)."""
    span = step * n_steps
    starts = []
    for t in range(len(times) - span):
        window = np.arange(t, t + span + 1, step)
        if mask[window].all() and times[t + span] - times[t] == span * store_step:
            starts.append(t)
    return np.asarray(starts, dtype=np.int64)


class TrajectoryDataset(Dataset):
    """Samples ``{"state", "forcings", "targets"}`` (see the module docstring).

    Parameters
    ----------
    states
        Normalised ``(T, C, H, W)`` array (or :class:`LazyStateArray`).
    times
        ``(T,)`` valid times of ``states``.
    grid, static
        Grid and normalised ``(S, H, W)`` static fields for the forcings.
    starts
        Start indices (from :func:`sample_starts` with ``max_steps``).
    step, max_steps
        Model step in store steps; largest rollout length the starts allow.
    with_path
        Also return ``"path"``, the ``step + 1`` states at every store step of the first
        model step ``(step + 1, C, H, W)`` (Spherical DYffusion's interpolator learns them).
    """

    def __init__(self, states: np.ndarray | LazyStateArray, times: pd.DatetimeIndex, grid: Grid,
                 static: np.ndarray | None, starts: np.ndarray, step: int, max_steps: int,
                 with_path: bool = False) -> None:
        self.states, self.times, self.grid, self.static = states, np.asarray(times), grid, static
        self.starts, self.step, self.max_steps, self.with_path = starts, step, max_steps, with_path
        self.rollout_steps = max_steps
        self.input_noise, self.noise_seed, self.epoch = 0.0, 0, 0
        self.mirror: tuple[torch.Tensor, torch.Tensor] | None = None   # (parity, offset), each (C, 1, 1)

    def set_input_noise(self, std: float, seed: int) -> None:
        """Add Gaussian noise of ``std`` (normalised units) to each sample's initial state.

        The model then learns to pull a slightly wrong state back towards the data rather
        than to keep (and amplify) its own errors, which is what makes long autoregressive
        rollouts stable. The noise of a sample depends only on ``seed``, the epoch and the
        sample, so it is the same however the batch is split over processes.
        """
        if std < 0:
            raise InputError(f"input_noise={std} must be >= 0")
        self.input_noise, self.noise_seed = float(std), int(seed)

    def set_equator_mirror(self, parity: np.ndarray | None, normaliser: Normaliser | None = None) -> None:
        r"""Replace half the samples (a coin per sample, seed and epoch) by their mirror image
        about the equator, each variable times its ``(C,)`` ``parity`` (:func:`mirror_parity`)
        in physical units: the states are normalised by ``normaliser``, so a variable of parity
        -1 becomes :math:`-x - 2\mu/\sigma`. None: no mirroring."""
        if parity is None:
            self.mirror = None
            return
        offset = np.zeros(len(parity))
        if normaliser is not None:
            mean, std = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (normaliser.mean, normaliser.std))
            offset = (parity - 1.0) * mean / std
        self.mirror = (torch.as_tensor(parity, dtype=torch.float32)[:, None, None],
                       torch.as_tensor(offset, dtype=torch.float32)[:, None, None])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.starts)

    def set_rollout_steps(self, n: int) -> None:
        if not 1 <= n <= self.max_steps:
            raise ValueError(f"rollout steps {n} outside 1..{self.max_steps}")
        self.rollout_steps = n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = self.rollout_steps
        index = self.starts[i] + self.step * np.arange(n + 1)
        if self.with_path:   # every store step of the first model step, then the later model steps
            index = np.concatenate([self.starts[i] + np.arange(self.step + 1), index[2:]])
        states = torch.from_numpy(np.ascontiguousarray(self.states[index]))
        sample_seed = (self.noise_seed * 1_000_003 + self.epoch) * 10_000_019 + int(self.starts[i])
        if self.mirror is not None and np.random.default_rng([sample_seed, 2]).random() < 0.5:
            parity, offset = self.mirror   # latitudes are symmetric on every grid: a flip mirrors them
            states = states.flip(-2) * parity.to(states.dtype) + offset.to(states.dtype)
        path = states[: self.step + 1] if self.with_path else None
        if path is not None:
            states = torch.cat([states[:1], states[self.step:]])
        state = states[0]
        if self.input_noise > 0:
            generator = torch.Generator().manual_seed(sample_seed)
            state = state + self.input_noise * torch.randn(state.shape, generator=generator, dtype=state.dtype)
        # sample_seed also seeds a stochastic model's noise (forecast.training.trainer.Rollout):
        # it depends on the seed, the epoch and the sample only, not on the process
        sample = {"state": state, "targets": states[1:], "sample_seed": torch.tensor(sample_seed, dtype=torch.int64),
                  "forcings": compute_forcings(self.grid, self.times[self.starts[i] + self.step * np.arange(n)],
                                               self.static)}
        if path is not None:
            sample["path"] = torch.cat([state[None], path[1:]])
        return sample


def mirror_parity(variables: list[str], parity: dict[str, int]) -> np.ndarray:
    r"""``(C,)`` parities of ``variables`` under the mirror about the equator, from ``parity``
    (:math:`\pm 1` per variable, every variable named).

    The shallow-water equations on the rotating sphere are unchanged by
    :math:`\varphi \to -\varphi` with :math:`v \to -v`, :math:`\zeta \to -\zeta` (the Coriolis
    parameter is odd in latitude, the vorticity a pseudo-scalar) and :math:`u`, :math:`h`,
    the divergence kept: the mirror image of a trajectory is another trajectory of the same
    climate when the forcing's statistics are symmetric too (the embedded stirred flow). Not
    for the real atmosphere: its land, orography and seasons are not symmetric.
    """
    unknown = sorted(set(parity) - set(variables))
    missing = [v for v in variables if v not in parity]
    if unknown or missing:
        raise InputError(f"train.equator_mirror must give the parity of every variable ({', '.join(variables)}); "
                         + (f"missing: {', '.join(missing)}" if missing else f"not in the data: {', '.join(unknown)}"))
    bad = {v: p for v, p in parity.items() if p not in (1, -1)}
    if bad:
        raise InputError(f"train.equator_mirror parities must be 1 or -1; got {bad}")
    return np.asarray([parity[v] for v in variables], dtype=np.float32)


@dataclass
class Splits:
    train: TrajectoryDataset
    val: TrajectoryDataset | None


def build_splits(states: np.ndarray | LazyStateArray, times: pd.DatetimeIndex, grid: Grid,
                 static: np.ndarray | None, store_step: pd.Timedelta, step: int, max_steps: int,
                 masks: tuple[np.ndarray, np.ndarray], with_path: bool = False) -> Splits:
    """Training samples of up to ``max_steps`` steps and one-step validation samples."""
    train_starts = sample_starts(times, masks[0], step, max_steps, store_step)
    if train_starts.size == 0:
        raise InputError(f"the training period ({int(masks[0].sum())} of {len(times)} times) holds no window of "
                         f"{max_steps} model steps of {step} store steps; use more data, a shorter step_hours "
                         "or fewer rollout_steps")
    val_starts = sample_starts(times, masks[1], step, 1, store_step)
    train = TrajectoryDataset(states, times, grid, static, train_starts, step, max_steps, with_path)
    val = TrajectoryDataset(states, times, grid, static, val_starts, step, 1) if val_starts.size else None
    return Splits(train=train, val=val)


def tendency_scale(dataset: TrajectoryDataset, max_samples: int = 256) -> np.ndarray:
    """Per-channel standard deviation of the normalised one-model-step tendency, ``(C,)``.

    Area-weighted over up to ``max_samples`` evenly spaced training samples (the same on
    every process, so DDP replicas agree); used as the model's ``residual_scale``.
    Channels that never change get 1 (no scaling).
    """
    weights = dataset.grid.area_weights().values[:, None]                        # (H, 1), mean 1
    picks = np.unique(np.linspace(0, len(dataset.starts) - 1, min(max_samples, len(dataset.starts))).astype(int))
    sq = np.zeros(dataset.states.shape[1])
    for start in dataset.starts[picks]:
        pair = np.asarray(dataset.states[np.array([start, start + dataset.step])], dtype=np.float64)
        diff = pair[1] - pair[0]                                                     # (C, H, W)
        sq += (weights * diff**2).mean(axis=(1, 2))
    std = np.sqrt(sq / len(picks))
    return np.where(std > 1e-6, std, 1.0)
