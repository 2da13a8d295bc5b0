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
from forecast.models.base import InferenceOptions, PrognosticModel, count_parameters, estimate_flops
from forecast.models.constraints import (StepConstraint, StepConstraints, TrainedOn, build_step_constraints,
                                         constrained_step)
from forecast.models.conservation import GlobalMeanConservation
from forecast.models.dyffusion import DYffusion
from forecast.models.hyperdiffusion import SpectralHyperdiffusion, wind_pairs
from forecast.models.sfno import SFNO
from forecast.models.spectral_cap import SpectralPowerCap
from pipelines.errors import InputError
from pipelines.grids import Grid

__all__ = ["ARCHITECTURES", "AFNO", "DYffusion", "SFNO", "PrognosticModel", "InferenceOptions", "build_model",
           "model_class", "check_inference_options", "count_parameters",
           "estimate_flops", "StepConstraint", "StepConstraints", "TrainedOn", "build_step_constraints",
           "constrained_step", "SpectralHyperdiffusion", "SpectralPowerCap", "GlobalMeanConservation", "wind_pairs"]

# the one mapping from ModelConfig.architecture to the model class
ARCHITECTURES: dict[str, type[PrognosticModel]] = {"sfno": SFNO, "afno": AFNO, "dyffusion": DYffusion}


def model_class(config: ModelConfig) -> type[PrognosticModel]:
    """The class of ``config.architecture`` (:data:`ARCHITECTURES`).

    Raises
    ------
    InputError
        If ``config.architecture`` is not a key of :data:`ARCHITECTURES`.
    """
    try:
        return ARCHITECTURES[config.architecture]
    except KeyError:
        raise InputError(f"unknown model architecture {config.architecture!r}; expected one of "
                         f"{', '.join(sorted(ARCHITECTURES))}") from None


def check_inference_options(config: ModelConfig, options: InferenceOptions, where: str = "the model") -> None:
    """Refuse inference ``options`` that the model ``config`` describes does not take: one its
    architecture has not (:attr:`PrognosticModel.inference_options`), or one this config of it
    cannot use (:meth:`PrognosticModel.check_inference_options`); ``where`` names the model.

    Raises
    ------
    InputError
        Naming the option, what it is for, and the model.
    """
    cls = model_class(config)
    for name, value in options.given().items():
        if name not in cls.inference_options:
            what = next((c.inference_options[name] for c in ARCHITECTURES.values() if name in c.inference_options),
                        "an inference option")
            raise InputError(f"rollout {name}={value:g} is {what}; {where} is a {config.architecture}")
    cls.check_inference_options(config, options, where)


def build_model(config: ModelConfig, grid: Grid, n_state: int, n_forcing: int,
                options: InferenceOptions = InferenceOptions()) -> PrognosticModel:
    """The model ``config`` describes, for ``n_state`` state and ``n_forcing`` forcing channels on
    ``grid``, with the inference ``options`` (the constraints on its steps: :func:`build_step_constraints`).

    Raises
    ------
    InputError
        If ``config.architecture`` is not a key of :data:`ARCHITECTURES`, the sizes do not fit the grid,
        or the architecture does not take ``options`` (:func:`check_inference_options`).
    """
    check_inference_options(config, options)
    return model_class(config).from_config(config, grid, n_state, n_forcing, options)
