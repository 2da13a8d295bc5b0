"""The plan of a rollout: what to run, resolved and checked before anything is written.

:meth:`RolloutPlan.build` turns a :class:`~forecast.config.RolloutConfig` into the models
(:mod:`forecast.rollout.models`), the initial conditions, the init times, lead and output
times (:mod:`forecast.rollout.times`), the perturbations
(:class:`~forecast.rollout.perturbations.PerturbationFactory`), the output's grid and layout,
and the resolved configuration whose hash names the output's parameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from forecast.checkpoint import Checkpoint
from forecast.config import RolloutConfig
from forecast.distributed import select_device
from forecast.models.constraints import TrainedOn, build_step_constraints
from forecast.normalise import Normaliser
from forecast.rollout.engine import BoundsCheck, RolloutEngine
from forecast.rollout.initial import InitialConditions, open_initial
from forecast.rollout.io import ForecastLayout, cf_attributes
from forecast.rollout.models import inference_options, load_models
from forecast.rollout.output import config_hash
from forecast.rollout.perturbations import PerturbationFactory, check_perturbation
from forecast.rollout.shards import member_block
from forecast.rollout.times import output_every_steps, parse_init_times, parse_lead
from pipelines.errors import InputError
from pipelines.grids import Grid

if TYPE_CHECKING:
    from pipelines.regrid import Regridder

__all__ = ["RolloutPlan"]


@dataclass
class RolloutPlan:
    """Everything a rollout needs, resolved and checked before anything is written."""

    config: RolloutConfig
    engine: RolloutEngine
    normaliser: Normaliser
    bounds: BoundsCheck
    initial: InitialConditions
    checkpoints: list[Checkpoint]
    variables: list[str]
    grid: Grid
    output_grid: Grid
    init_times: list[pd.Timestamp]
    n_steps: int
    device: torch.device
    regridder: Regridder | None = None
    perturbations: PerturbationFactory | None = None
    resolved: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    _initial: tuple[pd.Timestamp, torch.Tensor] | None = None   # the last init time's perturbed states

    @property
    def time_step(self) -> pd.Timedelta:
        return self.engine.time_step

    @property
    def every(self) -> int:
        """Model steps between written lead times (``output_every``: steps or a duration)."""
        return output_every_steps(self.config.output_every, self.time_step)

    @property
    def substeps(self) -> int:
        """Written states per model step: the DYffusion horizon with ``intermediate``, else 1."""
        return self.engine.substeps if self.config.intermediate else 1

    @property
    def output_leads(self) -> pd.TimedeltaIndex:
        sub = self.substeps
        return pd.TimedeltaIndex(np.arange(0, self.n_steps * sub + 1, self.every) * (self.time_step / sub))

    @property
    def written(self) -> list[str]:
        """The variables written (``config.variables``, default all); the model steps all of them."""
        return list(self.config.variables) if self.config.variables else list(self.variables)

    @property
    def block(self) -> int:
        """Members per work unit (:func:`forecast.rollout.shards.member_block`)."""
        return member_block(self.config.members, self.config.batch_members)

    @classmethod
    def build(cls, config: RolloutConfig, device: torch.device | None = None) -> "RolloutPlan":
        device = device or select_device(config.device)
        models, ckpts = load_models(list(config.checkpoints), device, inference_options(config))
        first = ckpts[0]
        grid, variables = first.grid, list(first.variables)
        step = pd.Timedelta(seconds=first.time_step_seconds)
        n_steps = parse_lead(config.lead, step)
        every = output_every_steps(config.output_every, step)
        if n_steps % every:
            raise InputError(f"lead {config.lead} ({n_steps} steps) is not a multiple of output_every="
                             f"{config.output_every} ({every} step(s))")
        if config.intermediate and every != 1:
            raise InputError("intermediate states are written at every store step between model steps; they "
                             f"cannot be combined with output_every={config.output_every}")
        unknown = [v for v in config.variables or [] if v not in variables]
        if unknown:
            raise InputError(f"variables {', '.join(unknown)} are not the model's; it has {', '.join(variables)}")
        init_times = parse_init_times(list(config.init_times))
        check_perturbation(config.perturbation, variables, step)
        initial = open_initial(config.initial, grid, variables, config.regrid_method)
        initial.check_times(init_times)
        for init_time in init_times:   # NaN in an analysis is bad input, refused before anything is written
            initial.fields(init_time)
        constraints = build_step_constraints([c.model_config for c in ckpts], TrainedOn.of(first), config)
        engine = RolloutEngine(models, grid, step, first.static, config.batch_members, device, constraints)
        if config.intermediate and engine.substeps == 1:
            raise InputError(f"--intermediate needs a model that makes states between its steps (architecture "
                             f"dyffusion); {first.path} is a {first.model_config.architecture}")
        output_grid = Grid.parse(config.output_grid) if config.output_grid else grid
        plan = cls(config=config, engine=engine, normaliser=Normaliser(first.mean, first.std),
                   bounds=BoundsCheck(variables, first.mean, first.std, config.bounds_std, dict(config.bounds)),
                   initial=initial, checkpoints=ckpts, variables=variables, grid=grid, output_grid=output_grid,
                   init_times=init_times, n_steps=n_steps, device=device,
                   regridder=_output_regridder(config, grid, output_grid))
        plan.perturbations = PerturbationFactory(config.perturbation, config.members, grid, variables, step, initial,
                                                 plan.analysis, engine.advance, init_times[0])
        plan.resolved = plan._resolved()
        plan.config_hash = config_hash(plan.resolved)
        plan.attrs = plan._attrs()
        return plan

    def analysis(self, time: pd.Timestamp) -> torch.Tensor:
        """The normalised analysis ``(C, H, W)`` at ``time``, on the device."""
        fields = torch.from_numpy(self.initial.fields(time)).to(self.device)
        return self.normaliser.normalise(fields)

    def _resolved(self) -> dict[str, Any]:
        """What the output depends on (not where it goes or how a run waits for it), JSON types."""
        resolved = self.config.model_dump(mode="json", exclude={"overwrite", "out", "lock_timeout_s"})
        resolved["device"] = self.device.type
        resolved["checkpoint_sha256"] = [c.sha256 for c in self.checkpoints]
        return resolved

    def _attrs(self) -> dict[str, Any]:
        from forecast import __version__

        provenance = {
            "checkpoints": [{"path": str(c.path), "sha256": c.sha256, "step": int(c.step)} for c in self.checkpoints],
            "config": self.config.model_dump(mode="json"),
            "seed": self.config.seed, "config_hash": self.config_hash, "resolved": self.resolved,
            "initial": self.initial.source,
            "initial_grid": str(self.initial.source_grid), "time_step_seconds": self.time_step.total_seconds(),
            "versions": {"sphere-forecast": __version__, "torch": torch.__version__},
        }
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "Conventions": "CF-1.8", "title": "ensemble forecast", "institution": "sphere-forecast",
            "source": f"sphere-forecast {__version__} autoregressive rollout",
            "history": f"{now} forecast rollout (sphere-forecast {__version__})",
            "grid": str(self.output_grid), "model_grid": str(self.grid),
            "seed": int(self.config.seed), "config_hash": self.config_hash,
            "provenance": json.dumps(provenance, sort_keys=True),
        }

    def layout(self) -> ForecastLayout:
        attrs = self.initial.variable_attrs()
        return ForecastLayout(variables=self.written, members=self.config.members,
                              init_times=pd.DatetimeIndex(self.init_times), lead_times=self.output_leads,
                              grid=self.output_grid, variable_attrs={v: cf_attributes(v, attrs.get(v))
                                                                     for v in self.written},
                              attrs=self.attrs, member_chunk=self.block)


def _output_regridder(config: RolloutConfig, grid: Grid, output_grid: Grid) -> Regridder | None:
    if output_grid == grid:
        return None
    if config.regrid_method is None:
        raise InputError(f"output_grid {output_grid} differs from the model grid {grid}; set regrid_method")
    from pipelines.regrid import make_regridder

    return make_regridder(config.regrid_method, grid, output_grid)
