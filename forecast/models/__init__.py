"""Neural prognostic models: one interface (:class:`PrognosticModel`), one registry.

>>> from forecast.config import ModelConfig
>>> from pipelines.grids import Grid
>>> model = build_model(ModelConfig(embed_dim=8, num_layers=2), Grid.parse("legendre-gauss:16x32"), 4, 2)
>>> model(torch.zeros(1, 4, 16, 32), torch.zeros(1, 2, 16, 32)).shape
torch.Size([1, 4, 16, 32])
"""

from __future__ import annotations

import torch  # noqa: F401  (used by the doctest)

from forecast.config import ModelConfig
from forecast.models.afno import AFNO
from forecast.models.base import PrognosticModel, count_parameters, estimate_flops
from forecast.models.constraints import (StepConstraint, StepConstraints, TrainedOn, build_step_constraints,
                                         constrained_step)
from forecast.models.conservation import GlobalMeanConservation
from forecast.models.dyffusion import DYffusion
from forecast.models.hyperdiffusion import SpectralHyperdiffusion, wind_pairs
from forecast.models.sfno import SFNO
from forecast.models.spectral_cap import SpectralPowerCap
from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["ARCHITECTURES", "AFNO", "DYffusion", "SFNO", "PrognosticModel", "build_model", "count_parameters",
           "estimate_flops", "StepConstraint", "StepConstraints", "TrainedOn", "build_step_constraints",
           "constrained_step", "SpectralHyperdiffusion", "SpectralPowerCap", "GlobalMeanConservation", "wind_pairs"]

# the one mapping from ModelConfig.architecture to the model class
ARCHITECTURES: dict[str, type[PrognosticModel]] = {"sfno": SFNO, "afno": AFNO, "dyffusion": DYffusion}


def build_model(config: ModelConfig, grid: Grid, n_state: int, n_forcing: int) -> PrognosticModel:
    """The model ``config`` describes, for ``n_state`` state and ``n_forcing`` forcing channels on
    ``grid`` (the constraints on its steps: :func:`build_step_constraints`).

    Raises
    ------
    InputError
        If ``config.architecture`` is not a key of :data:`ARCHITECTURES` or the sizes do not fit the grid.
    """
    try:
        cls = ARCHITECTURES[config.architecture]
    except KeyError:
        raise InputError(f"unknown model architecture {config.architecture!r}; expected one of "
                         f"{', '.join(sorted(ARCHITECTURES))}") from None
    return cls.from_config(config, grid, n_state, n_forcing)
