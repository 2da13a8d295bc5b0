"""The models of a rollout: every checkpoint loaded, checked against the others, and built with
the rollout's inference-time settings."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipelines.errors import InputError

__all__ = ["load_models"]


def load_models(paths: list[str], device: torch.device, dropout: float | None = None,
                noise_amplitude: float | None = None,
                member_dropout: float | None = None) -> tuple[list[torch.nn.Module], list[Any]]:
    """Load every checkpoint; refuse a set that disagrees on grid, variables, step or statistics.
    ``dropout`` sets a DYffusion interpolator's inference dropout (MLP dropout and drop path),
    ``member_dropout`` its member masks' rate; ``noise_amplitude`` multiplies a stochastic
    SFNO's noise (None: as trained)."""
    from forecast.checkpoint import load_checkpoint, model_from_checkpoint

    if not paths:
        raise InputError("no checkpoint given; pass --checkpoint CKPT (repeatable)")
    ckpts = [load_checkpoint(p) for p in paths]   # each read and checksummed once
    overrides: dict[str, float] = {}
    kinds = {c.model_config.architecture for c in ckpts}
    for key, rate in (("dropout", dropout), ("member_dropout", member_dropout)):
        if rate is not None and kinds != {"dyffusion"}:
            raise InputError(f"rollout {key}={rate} is an inference dropout of a DYffusion interpolator; "
                             f"these checkpoints are {', '.join(sorted(kinds))}")
    if dropout is not None:
        overrides.update(mlp_dropout=dropout, drop_path_rate=dropout)
    if member_dropout is not None:
        overrides["member_dropout"] = member_dropout
    if noise_amplitude is not None:
        plain = [p for p, c in zip(paths, ckpts) if c.model_config.architecture != "sfno"
                 or not c.model_config.noise_channels]
        if plain:
            raise InputError(f"rollout noise_amplitude={noise_amplitude:g} scales the noise of a stochastic SFNO "
                             f"(model.noise_channels > 0); {', '.join(plain)} has none")
        overrides["noise_amplitude"] = noise_amplitude
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
    return [model_from_checkpoint(c, device, overrides or None) for c in ckpts], ckpts
