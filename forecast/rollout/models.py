"""The models of a rollout: every checkpoint loaded, checked against the others, and built with
the rollout's inference options (:class:`~forecast.models.InferenceOptions`), which each
architecture accepts or refuses through the model registry."""

from __future__ import annotations

import numpy as np
import torch

from forecast.checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint
from forecast.config import RolloutConfig
from forecast.models import InferenceOptions, PrognosticModel, check_inference_options
from pipelines.errors import InputError

__all__ = ["inference_options", "load_models"]


def inference_options(config: RolloutConfig) -> InferenceOptions:
    """The inference options a rollout config sets (``dropout``, ``member_dropout``, ``noise_amplitude``)."""
    return InferenceOptions(dropout=config.dropout, member_dropout=config.member_dropout,
                            noise_amplitude=config.noise_amplitude)


def load_models(paths: list[str], device: torch.device,
                options: InferenceOptions = InferenceOptions()) -> tuple[list[PrognosticModel], list[Checkpoint]]:
    """Load every checkpoint and build its model with ``options``; refuse options a checkpoint's
    architecture does not take, and a set of checkpoints that disagrees on grid, variables, step
    or statistics."""
    if not paths:
        raise InputError("no checkpoint given; pass --checkpoint CKPT (repeatable)")
    ckpts = [load_checkpoint(p) for p in paths]   # each read and checksummed once
    for path, ckpt in zip(paths, ckpts):
        check_inference_options(ckpt.model_config, options, f"checkpoint {path}")
    first = ckpts[0]
    for path, ckpt in zip(paths[1:], ckpts[1:]):
        same = (ckpt.grid == first.grid and list(ckpt.variables) == list(first.variables)
                and ckpt.time_step_seconds == first.time_step_seconds
                and list(ckpt.static_names) == list(first.static_names)
                and np.allclose(ckpt.mean, first.mean) and np.allclose(ckpt.std, first.std))
        if not same:
            raise InputError(f"checkpoint {path} does not match {paths[0]} (grid {ckpt.grid} vs {first.grid}, "
                             f"variables {ckpt.variables} vs {first.variables}, step {ckpt.time_step_seconds:g} s "
                             f"vs {first.time_step_seconds:g} s, or statistics); a multi-checkpoint ensemble "
                             "needs models trained on the same data")
    return [model_from_checkpoint(c, device, options) for c in ckpts], ckpts
