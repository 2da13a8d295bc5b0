"""The rollout's ``perturbation`` section: checked before anything is written
(:func:`check_perturbation`), then turned into the perturbation of each init time
(:class:`PerturbationFactory`)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from forecast.config import PerturbationConfig
from forecast.rollout.initial import InitialConditions
from forecast.rollout.perturbations.base import Centred, Compose, Identity, Perturbation, amplitude_vector
from forecast.rollout.perturbations.bred import BredVector
from forecast.rollout.perturbations.fields import DataSpectrum, SphericalGaussian, tendency_spectrum
from forecast.rollout.times import hours
from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["check_perturbation", "PerturbationFactory"]

log = logging.getLogger(__name__)


def check_perturbation(cfg: PerturbationConfig, variables: list[str], step: pd.Timedelta) -> None:
    """Refuse a bad perturbation section before anything is written."""
    kinds = [k for k in cfg.kind if k != "none"]
    if len(set(kinds)) != len(kinds):
        raise InputError(f"perturbation kinds repeat: {cfg.kind}; give each at most once")
    amplitude_vector(cfg.amplitude, variables)
    if kinds and cfg.length_scale_km <= 0:
        raise InputError(f"perturbation length_scale_km must be > 0, got {cfg.length_scale_km}")
    if "bred-vector" in kinds:
        steps, rest = divmod(pd.Timedelta(hours=cfg.bred_window_hours), step)
        if steps < 1 or rest != pd.Timedelta(0) or cfg.bred_cycles < 1:
            raise InputError(f"bred_window_hours={cfg.bred_window_hours:g} must be a positive multiple of the model "
                             f"time step ({hours(step)}) and bred_cycles={cfg.bred_cycles} at least 1")


class PerturbationFactory:
    """The configured perturbations of each init time, for ``members`` members.

    Parameters
    ----------
    config
        The rollout's ``perturbation`` section (checked by :func:`check_perturbation`).
    members
        The ensemble size (one member is never centred).
    grid, variables, time_step
        The model's grid, variables and step.
    initial
        The initial conditions (which analyses exist, for breeding and the data spectrum).
    analysis
        ``analysis(time)``: the normalised analysis ``(C, H, W)`` at ``time`` on the model's device.
    advance
        ``advance(states, time, n_steps)``: ``n_steps`` model steps from ``time`` (breeding).
    first_init
        The first init time: the data spectrum uses analyses up to it only, so the forecast's
        verification period stays unseen.
    """

    def __init__(self, config: PerturbationConfig, members: int, grid: Grid, variables: list[str],
                 time_step: pd.Timedelta, initial: InitialConditions,
                 analysis: Callable[[pd.Timestamp], torch.Tensor],
                 advance: Callable[[torch.Tensor, pd.Timestamp, int], torch.Tensor], first_init: pd.Timestamp) -> None:
        self.config, self.members, self.grid, self.time_step = config, members, grid, time_step
        self.initial, self.analysis, self.advance, self.first_init = initial, analysis, advance, first_init
        self.amplitude = amplitude_vector(config.amplitude, variables)
        self._gaussian: SphericalGaussian | None = None
        self._data_spectrum: DataSpectrum | None = None

    def __call__(self, init_time: pd.Timestamp, x0: torch.Tensor) -> Perturbation:
        """The perturbation of the states ``x0`` ``(M, C, H, W)`` at ``init_time`` (bred vectors need
        its analyses)."""
        parts: list[Perturbation] = []
        for kind in (k for k in self.config.kind if k != "none"):
            if kind == "data-spectrum":
                parts.append(self.data_spectrum())
            elif kind == "spherical-gaussian":
                parts.append(self.gaussian())
            else:
                parts.append(self._bred_vector(init_time, x0, self.gaussian()))
        if not parts:
            return Identity()
        combined: Perturbation = parts[0] if len(parts) == 1 else Compose(parts)
        return Centred(combined) if self.config.centre and self.members > 1 else combined

    def gaussian(self) -> SphericalGaussian:
        """The spherical-Gaussian sampler (built once: its transform is costly on big grids)."""
        if self._gaussian is None:
            self._gaussian = SphericalGaussian(self.grid, self.amplitude, self.config.length_scale_km)
        return self._gaussian

    def data_spectrum(self, pairs: int = 16) -> DataSpectrum:
        """The data-spectrum sampler, from up to ``pairs`` one-step tendencies of the initial
        conditions up to the first init time (never later: the forecast's verification
        period stays unseen), built once."""
        if self._data_spectrum is None:
            step = self.time_step
            usable = [t for t in self.initial.times if t + step <= self.first_init and self.initial.has(t + step)]
            if not usable:
                raise InputError(f"perturbation kind data-spectrum needs analyses one model step apart "
                                 f"({hours(step)}) up to the first init time in {self.initial.source}")
            picks = [usable[i] for i in np.unique(np.linspace(0, len(usable) - 1, min(pairs, len(usable))).astype(int))]
            stacked = torch.stack([torch.stack([self.analysis(t).cpu(), self.analysis(t + step).cpu()])
                                   for t in picks])
            self._data_spectrum = DataSpectrum(self.grid, self.amplitude, tendency_spectrum(stacked, self.grid))
        return self._data_spectrum

    def _bred_vector(self, init_time: pd.Timestamp, x0: torch.Tensor, seed: Perturbation) -> BredVector:
        cfg = self.config
        window = pd.Timedelta(hours=cfg.bred_window_hours)
        steps = int(window // self.time_step)   # checked by check_perturbation
        starts = [init_time - (cfg.bred_cycles - k) * window for k in range(cfg.bred_cycles)]
        if not all(self.initial.has(t) for t in starts):
            log.warning("breeding: analyses before %s are missing from %s; cycling around the initial state instead",
                        init_time, self.initial.source)

        def analyses(k: int) -> torch.Tensor:
            if self.initial.has(starts[k]):
                return self.analysis(starts[k])
            return x0[0]

        def advance(states: torch.Tensor, k: int) -> torch.Tensor:
            return self.advance(states, starts[k], steps)

        return BredVector(advance, analyses, seed, self.amplitude, self.grid, cfg.bred_cycles)
