r"""Post-step constraints: one chain, built in one place (:func:`build_step_constraints`) and
applied in one place (:func:`constrained_step`, used by training and by the rollout engine).

A model step maps the normalised state :math:`x_t` ``(B, C, H, W)`` to :math:`y` ``(B, C, H, W)``,
or, for DYffusion with its intermediate states, ``(B, h, C, H, W)``. A :class:`StepConstraint`
:math:`c` maps :math:`(y, x_t)` to a state of :math:`y`'s shape, and the chain applies its
constraints in order, each given the step's input:

.. math:: y' = c_K\big(\cdots c_2(c_1(y, x_t), x_t) \cdots, x_t\big).

The chain, in this order:

1. :class:`~forecast.models.hyperdiffusion.SpectralHyperdiffusion` (``model.hyperdiffusion_efold_hours``,
   SFNO and AFNO): degree :math:`l` damped by :math:`D_l`, in training and at inference;
2. :class:`~forecast.models.diagnostics.DiagnosedVorticity` (``model.diagnosed_vorticity``): every
   ``vo`` replaced by the curl of the winds, in training and at inference;
3. :class:`~forecast.models.spectral_cap.SpectralPowerCap` (``rollout.spectral_cap``): each degree's
   power at most :math:`\kappa` times the training data's, at inference;
4. :class:`~forecast.models.conservation.GlobalMeanConservation` (``rollout.conserve_global_mean``):
   :math:`y_c \mathrel{+}= \langle x_c \rangle - \langle y_c \rangle`, at inference.

Each intermediate state of a DYffusion step is constrained against the step's input as its
result is. An empty chain returns :math:`y` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
import torch.nn as nn

from forecast.config import ModelConfig, RolloutConfig
from forecast.models.conservation import GlobalMeanConservation
from forecast.models.diagnostics import DiagnosedVorticity, vorticity_triples
from forecast.models.hyperdiffusion import SpectralHyperdiffusion, wind_pairs
from forecast.models.spectral_cap import SpectralPowerCap
from pipelines.errors import InputError
from pipelines.grids import Grid

if TYPE_CHECKING:
    from forecast.checkpoint import Checkpoint
    from forecast.models.base import PrognosticModel

__all__ = ["StepConstraint", "StepConstraints", "TrainedOn", "build_step_constraints", "constrained_step"]


class StepConstraint(Protocol):
    """Maps a step's new normalised state ``(B, C, H, W)`` or ``(B, h, C, H, W)``, given the
    state it was stepped from ``(B, C, H, W)``, to a state of the new state's shape."""

    def __call__(self, new: torch.Tensor, previous: torch.Tensor) -> torch.Tensor: ...


class StepConstraints(nn.Module):
    """The chain of the module docstring: ``constraints``, :class:`StepConstraint` modules (so
    that ``.to(device)`` moves their tables), applied in order."""

    def __init__(self, constraints: Sequence[nn.Module] = ()) -> None:
        super().__init__()
        self.constraints = nn.ModuleList(constraints)

    def forward(self, new: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        for constraint in self.constraints:
            new = constraint(new, previous)
        return new


@dataclass(frozen=True, eq=False)   # arrays: no field-wise equality
class TrainedOn:
    """What the chain needs of the data a model was trained on: its grid, variables, model step
    (s), the ``(C,)`` mean and std of the normalisation (physical units), the ``(C, L)`` power per
    degree of the normalised training states (None: not known) and where these come from."""

    grid: Grid
    variables: list[str]
    time_step_seconds: float
    mean: np.ndarray
    std: np.ndarray
    power_spectrum: np.ndarray | None = None
    source: str = "the training data"

    @classmethod
    def of(cls, checkpoint: Checkpoint) -> TrainedOn:
        """From a :class:`~forecast.checkpoint.Checkpoint`."""
        return cls(checkpoint.grid, list(checkpoint.variables), checkpoint.time_step_seconds, checkpoint.mean,
                   checkpoint.std, checkpoint.power_spectrum, f"checkpoint {checkpoint.path}")


def build_step_constraints(models: Sequence[ModelConfig], trained_on: TrainedOn,
                           rollout: RolloutConfig | None = None) -> list[StepConstraints]:
    """One chain per model config (module docstring): the model's hyperdiffusion, then the
    ``rollout``'s cap and conservation (None: training, which has neither). The rollout's
    constraints are one instance shared by every chain (their tables are large on fine grids).

    Raises
    ------
    InputError
        If a DYffusion config asks for hyperdiffusion, the cap for a spectrum ``trained_on`` lacks,
        or the conservation for variables the model does not have.
    """
    own = [(_hyperdiffusion(model, trained_on), _diagnosed_vorticity(model, trained_on)) for model in models]
    shared = [] if rollout is None else [_spectral_cap(rollout, trained_on), _conservation(rollout, trained_on)]
    return [StepConstraints([c for c in (*mine, *shared) if c is not None]) for mine in own]


def constrained_step(model: PrognosticModel, constraints: StepConstraints, state: torch.Tensor, forcings: torch.Tensor,
                     noise: torch.Tensor | None = None, intermediate: bool = False) -> torch.Tensor:
    """The model's step from ``state`` ``(B, C, H, W)`` with ``forcings`` ``(B, F, H, W)`` and
    ``noise``, then the chain; with ``intermediate`` (DYffusion) the states at every store step
    of it ``(B, h, C, H, W)``, each constrained."""
    new = model.sample(state, forcings, noise, intermediate=True) if intermediate else model(state, forcings, noise)
    return constraints(new, state)


def _hyperdiffusion(config: ModelConfig, trained_on: TrainedOn) -> SpectralHyperdiffusion | None:
    """The filter of ``model.hyperdiffusion_efold_hours`` for the data's step and statistics, or None."""
    if config.hyperdiffusion_efold_hours is None:
        return None
    from forecast.models import model_class   # the registry imports this module

    cls = model_class(config)
    if not cls.takes_hyperdiffusion:
        raise InputError(f"model.hyperdiffusion_efold_hours filters the step of an SFNO or AFNO; {cls.__name__}'s "
                         "networks are trained on states, not steps: leave it unset")
    hyperdiffusion = SpectralHyperdiffusion(trained_on.grid, config.hyperdiffusion_efold_hours,
                                            config.hyperdiffusion_degree, config.hyperdiffusion_order,
                                            wind_pairs(trained_on.variables))
    hyperdiffusion.set_time_step(trained_on.time_step_seconds)
    hyperdiffusion.set_normalisation(trained_on.mean, trained_on.std)
    return hyperdiffusion


def _diagnosed_vorticity(config: ModelConfig, trained_on: TrainedOn) -> DiagnosedVorticity | None:
    """The curl of the winds in place of the vorticity channels (``model.diagnosed_vorticity``), or None."""
    if not config.diagnosed_vorticity:
        return None
    triples = vorticity_triples(trained_on.variables)
    if not triples:
        raise InputError(f"model.diagnosed_vorticity needs u, v and vo (same suffix) among the variables; the "
                         f"model has {', '.join(trained_on.variables)}")
    return DiagnosedVorticity(trained_on.grid, triples, trained_on.mean, trained_on.std)


def _spectral_cap(config: RolloutConfig, trained_on: TrainedOn) -> SpectralPowerCap | None:
    """The cap on each new state's power per degree (``config.spectral_cap`` times the training
    data's), or None."""
    if config.spectral_cap is None:
        return None
    if trained_on.power_spectrum is None:
        raise InputError(f"spectral_cap={config.spectral_cap:g} caps the power per degree at the training data's; "
                         f"{trained_on.source} was written before checkpoints carried that spectrum: retrain "
                         "it, or roll out without spectral_cap")
    return SpectralPowerCap(trained_on.grid, trained_on.power_spectrum, config.spectral_cap)


def _conservation(config: RolloutConfig, trained_on: TrainedOn) -> GlobalMeanConservation | None:
    """The correction that keeps ``config.conserve_global_mean``'s global means, or None."""
    if not config.conserve_global_mean:
        return None
    variables = trained_on.variables
    unknown = [v for v in config.conserve_global_mean if v not in variables]
    if unknown:
        raise InputError(f"conserve_global_mean names {', '.join(unknown)}, not the model's variables; it has "
                         f"{', '.join(variables)}")
    return GlobalMeanConservation(trained_on.grid, [variables.index(v) for v in config.conserve_global_mean])
