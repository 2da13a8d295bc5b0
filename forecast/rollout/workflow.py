"""``forecast rollout``: checkpoints + initial conditions -> streamed ensemble forecast.

:func:`rollout` resolves a :class:`~forecast.config.RolloutConfig` into a
:class:`RolloutPlan` (models, initial conditions, times, perturbations, output
layout), then for each init time perturbs the analysis, steps all members
autoregressively and hands every lead time to the writer as soon as it is produced
(see :mod:`forecast.rollout.io` for the file layout, the streaming and the resume).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from forecast.config import RolloutConfig
from forecast.distributed import (DistributedContext, agree, all_gather_objects, broadcast_object,
                                  cleanup_distributed, select_device, setup_distributed)
from forecast.models.constraints import TrainedOn, build_step_constraints
from forecast.normalise import Normaliser
from forecast.rollout.engine import BlowUpError, BoundsCheck, RolloutEngine
from forecast.rollout.initial import InitialConditions, open_initial
from forecast.rollout.io import (BackgroundWriter, ForecastLayout, ForecastSink, ForecastWriter, cf_attributes,
                                 completed_leads, is_complete, open_forecast, partial_path, remove_finalise_leftovers,
                                 remove_stale_temporaries, saved_config)
from forecast.rollout.shards import WorkUnit, member_block, units_of_rank, work_units
from forecast.rollout.perturbations import (BredVector, Centred, Compose, DataSpectrum, Identity, Perturbation,
                                            SphericalGaussian, amplitude_vector, tendency_spectrum)
from pipelines.config import config_differences
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.locks import hold_lock, lock_path
from pipelines.outputs import check_output
from pipelines.progress import progress_bar

__all__ = ["rollout", "run_plan", "parse_lead", "parse_init_times", "RolloutPlan", "load_models"]

log = logging.getLogger(__name__)

_LEAD = re.compile(r"^\s*-?\s*\d+(\.\d+)?\s*[a-zA-Z]+(\s*\d+(\.\d+)?\s*[a-zA-Z]+)*\s*$")


def parse_lead(text: str, step: pd.Timedelta, name: str = "lead") -> int:
    """Number of model steps in a lead such as ``"10d"``, ``"72h"``, ``"6h"`` or ``"1d12h"``.

    ``name`` is the option the duration came from (``lead``, ``output_every``), for the messages.

    Raises
    ------
    InputError
        If ``text`` is not a positive duration with units or not a multiple of ``step``.
    """
    step = pd.Timedelta(step)
    try:
        if not _LEAD.match(str(text)):
            raise ValueError
        lead = pd.Timedelta(str(text).replace(" ", ""))
    except ValueError:
        raise InputError(f"cannot parse {name} {text!r}; expected a duration with units, e.g. 10d, 72h or 6h") from None
    if lead <= pd.Timedelta(0):
        raise InputError(f"{name} {text!r} must be a positive duration, e.g. 10d, 72h or 6h")
    steps, rest = divmod(lead, step)
    if rest != pd.Timedelta(0):
        raise InputError(f"{name} {text!r} is not a multiple of the model time step {_hours(step)}")
    return int(steps)


def parse_init_times(texts: list[str]) -> list[pd.Timestamp]:
    """Sorted unique init times from ISO strings (comma lists allowed inside an item)."""
    items = [t.strip() for text in texts for t in str(text).split(",") if t.strip()]
    if not items:
        raise InputError("no init time given; pass --init 2020-01-01T00[,2020-01-02T00,...]")
    times = []
    for item in items:
        try:
            times.append(pd.Timestamp(item if len(item) != 13 else item + ":00"))
        except ValueError:
            raise InputError(f"cannot parse init time {item!r}; expected ISO, e.g. 2020-01-01T00 or 2020-01-01T06:00") from None
    if any(t.tz is not None for t in times):
        raise InputError("init times must be UTC without a time-zone suffix, e.g. 2020-01-01T00")
    return sorted(set(times))


def _hours(step: pd.Timedelta) -> str:
    return f"{step / pd.Timedelta(hours=1):g} h"


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


@dataclass
class RolloutPlan:
    """Everything a rollout needs, resolved and checked before anything is written."""

    config: RolloutConfig
    engine: RolloutEngine
    normaliser: Normaliser
    bounds: BoundsCheck
    initial: InitialConditions
    checkpoints: list[Any]
    variables: list[str]
    grid: Grid
    output_grid: Grid
    init_times: list[pd.Timestamp]
    n_steps: int
    device: torch.device
    regridder: Any = None
    resolved: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)
    _gaussian: SphericalGaussian | None = None
    _data_spectrum: DataSpectrum | None = None
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
        models, ckpts = load_models(list(config.checkpoints), device, config.dropout, config.noise_amplitude,
                                    config.member_dropout)
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
        check_perturbation(config, variables, step)
        initial = open_initial(config.initial, grid, variables, config.regrid_method)
        initial.check_times(init_times)
        for init_time in init_times:   # NaN in an analysis is bad input, refused before anything is written
            initial.fields(init_time)
        constraints = build_step_constraints([c.model_config for c in ckpts], TrainedOn.of(first), config)
        engine = RolloutEngine(models, grid, step, first.static, config.batch_members, device, constraints)
        if config.intermediate and engine.substeps == 1:
            raise InputError(f"--intermediate needs a model that makes states between its steps (architecture "
                             f"dyffusion); {first.path} is a {first.model_config.architecture}")
        plan = cls(config=config, engine=engine, normaliser=Normaliser(first.mean, first.std),
                   bounds=BoundsCheck(variables, first.mean, first.std, config.bounds_std, dict(config.bounds)),
                   initial=initial, checkpoints=ckpts, variables=variables, grid=grid,
                   output_grid=_output_grid(config, grid), init_times=init_times, n_steps=n_steps, device=device)
        plan.regridder = _output_regridder(config, grid, plan.output_grid)
        plan.resolved = plan._resolved()
        plan.config_hash = config_hash(plan.resolved)
        plan.attrs = plan._attrs()
        return plan

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

    def gaussian(self, amplitude: np.ndarray) -> SphericalGaussian:
        """The spherical-Gaussian sampler (built once: its transform is costly on big grids)."""
        if self._gaussian is None:
            self._gaussian = SphericalGaussian(self.grid, amplitude, self.config.perturbation.length_scale_km)
        return self._gaussian

    def data_spectrum(self, amplitude: np.ndarray, pairs: int = 16) -> DataSpectrum:
        """The data-spectrum sampler, from up to ``pairs`` one-step tendencies of the initial
        conditions up to the first init time (never later: the forecast's verification
        period stays unseen), built once."""
        if self._data_spectrum is None:
            times = self.initial.times
            usable = [t for t in times if t + self.time_step <= self.init_times[0] and self.initial.has(t + self.time_step)]
            if not usable:
                raise InputError(f"perturbation kind data-spectrum needs analyses one model step apart "
                                 f"({_hours(self.time_step)}) up to the first init time in {self.initial.source}")
            picks = [usable[i] for i in np.unique(np.linspace(0, len(usable) - 1, min(pairs, len(usable))).astype(int))]
            stacked = torch.stack([torch.stack([_normalised_analysis(self, t).cpu(),
                                                _normalised_analysis(self, t + self.time_step).cpu()])
                                   for t in picks])
            self._data_spectrum = DataSpectrum(self.grid, amplitude, tendency_spectrum(stacked, self.grid))
        return self._data_spectrum

    def layout(self) -> ForecastLayout:
        attrs = self.initial.variable_attrs()
        return ForecastLayout(variables=self.written, members=self.config.members,
                              init_times=pd.DatetimeIndex(self.init_times), lead_times=self.output_leads,
                              grid=self.output_grid, variable_attrs={v: cf_attributes(v, attrs.get(v))
                                                                     for v in self.written},
                              attrs=self.attrs, member_chunk=self.block)


def output_every_steps(every: int | str, step: pd.Timedelta) -> int:
    """``output_every`` in model steps: an int is steps, a string a duration (``"24h"``) that
    must be a positive multiple of the model step."""
    if isinstance(every, int):
        return every
    return parse_lead(every, step, "output_every")   # the same rules: positive, units, a multiple of the step


def _output_grid(config: RolloutConfig, grid: Grid) -> Grid:
    return Grid.parse(config.output_grid) if config.output_grid else grid


def _output_regridder(config: RolloutConfig, grid: Grid, output_grid: Grid) -> Any:
    if output_grid == grid:
        return None
    if config.regrid_method is None:
        raise InputError(f"output_grid {output_grid} differs from the model grid {grid}; set regrid_method")
    from pipelines.regrid import make_regridder

    return make_regridder(config.regrid_method, grid, output_grid)


# -- perturbations ----------------------------------------------------------------------------
def check_perturbation(config: RolloutConfig, variables: list[str], step: pd.Timedelta) -> None:
    """Refuse a bad perturbation section before anything is written."""
    cfg = config.perturbation
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
                             f"time step ({_hours(step)}) and bred_cycles={cfg.bred_cycles} at least 1")


def build_perturbation(plan: RolloutPlan, init_time: pd.Timestamp, x0: torch.Tensor) -> Perturbation:
    """The configured perturbations for one init time (bred vectors need its analyses)."""
    cfg = plan.config.perturbation
    kinds = [k for k in cfg.kind if k != "none"]
    amplitude = amplitude_vector(cfg.amplitude, plan.variables)
    parts: list[Perturbation] = []
    for kind in kinds:
        if kind == "data-spectrum":
            parts.append(plan.data_spectrum(amplitude))
            continue
        gaussian = plan.gaussian(amplitude)
        parts.append(gaussian if kind == "spherical-gaussian" else _bred_vector(plan, init_time, x0, gaussian, amplitude))
    if not parts:
        return Identity()
    combined: Perturbation = parts[0] if len(parts) == 1 else Compose(parts)
    return Centred(combined) if cfg.centre and plan.config.members > 1 else combined


def _bred_vector(plan: RolloutPlan, init_time: pd.Timestamp, x0: torch.Tensor, seed: Perturbation,
                 amplitude: np.ndarray) -> BredVector:
    cfg = plan.config.perturbation
    window = pd.Timedelta(hours=cfg.bred_window_hours)
    steps = window // plan.time_step   # checked by check_perturbation
    starts = [init_time - (cfg.bred_cycles - k) * window for k in range(cfg.bred_cycles)]
    if not all(plan.initial.has(t) for t in starts):
        log.warning("breeding: analyses before %s are missing from %s; cycling around the initial state instead",
                    init_time, plan.initial.source)

    def analyses(k: int) -> torch.Tensor:
        if plan.initial.has(starts[k]):
            return _normalised_analysis(plan, starts[k])
        return x0[0]

    def advance(states: torch.Tensor, k: int) -> torch.Tensor:
        return plan.engine.advance(states, starts[k], int(steps))

    return BredVector(advance, analyses, seed, amplitude, plan.grid, cfg.bred_cycles)


def _normalised_analysis(plan: RolloutPlan, time: pd.Timestamp) -> torch.Tensor:
    fields = torch.from_numpy(plan.initial.fields(time)).to(plan.device)
    return plan.normaliser.normalise(fields)


def member_seed(seed: int, init_time: pd.Timestamp) -> int:
    """The generator seed of one init time: depends on ``seed`` and the time only (not on the others)."""
    hours = int(pd.Timestamp(init_time).value // 3_600_000_000_000)
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, hours & 0xFFFFFFFF]).generate_state(1)[0])


# -- the run -------------------------------------------------------------------------------------
def rollout(config: RolloutConfig) -> Path:
    """Run (or resume) the rollout that ``config`` describes and return the output path.

    Under ``torchrun`` the (init time, member block) units are spread over the processes
    (:mod:`forecast.rollout.shards`); the output is the same as one process's. Process 0
    holds the output's lock for the whole run. A complete output made with the same
    parameters is kept as it is, one made with others is refused, unless
    ``config.overwrite``; a partial one made with the same parameters is resumed.

    Raises
    ------
    InputError
        For a bad configuration, checkpoint or initial conditions (before anything is
        written), or an output made with other parameters.
    LockedError
        When another rollout is writing the same output.
    BlowUpError
        When the forecast becomes NaN, inf or leaves the physical bounds; the complete
        lead times stay in ``<out>.partial``.
    """
    out = check_output_path(config.out, config)
    config = config.model_copy(update={"out": str(out)})   # a link at --out resolved
    ctx = setup_distributed(config.device)
    try:
        with contextlib.ExitStack() as stack:
            agree(ctx, lambda: _claim_output(out, config, stack) if ctx.is_main else None)
            plan = agree(ctx, lambda: RolloutPlan.build(config, ctx.device))
            skip = agree(ctx, lambda: _already_done(plan) if ctx.is_main else None)
            if broadcast_object(skip, ctx):
                log.info("%s is complete and made with the same parameters; skipping (--overwrite recomputes it)", out)
                return out
            return run_plan(plan, ctx)
    finally:
        cleanup_distributed(ctx)


def _claim_output(out: Path, config: RolloutConfig, stack: contextlib.ExitStack) -> None:
    """Process 0: lock the output, remove a killed run's temporaries, refuse a broken output."""
    stack.enter_context(hold_lock(lock_path(out), config.lock_timeout_s, f"another `forecast rollout` is writing {out}"))
    removed = remove_stale_temporaries(out) + (0 if config.overwrite else remove_finalise_leftovers(out))
    if removed:
        log.info("removed %d temporary file(s) left by an earlier, killed run of %s", removed, out)
    if out.exists() and not config.overwrite and not is_complete(out):
        raise InputError(f"{out} exists but is not a complete forecast; pass --overwrite to replace it")


def _already_done(plan: RolloutPlan) -> bool:
    """Whether the output exists, complete and made with the same parameters (refuse other parameters)."""
    if plan.config.overwrite:
        return False
    refuse_other_parameters(plan)
    return Path(plan.config.out).exists()


def check_output_path(out: str | Path, config: RolloutConfig | None = None) -> Path:
    """Refuse an output that cannot be a forecast before any work: suffix, kind, parent, a
    dangling link, or (given ``config``) one of the rollout's inputs; returns it with a link
    at ``out`` resolved."""
    from forecast.checkpoint import checksum_path

    out = Path(out)
    if out.suffix not in (".zarr", ".nc"):
        raise InputError(f"output {out} must end in .zarr or .nc")
    inputs = {} if config is None else {"--checkpoint": list(config.checkpoints),
                                        "--checkpoint's checksum": [checksum_path(c) for c in config.checkpoints],
                                        "--initial": config.initial}
    return check_output(out, inputs, "--out", "dir" if out.suffix == ".zarr" else "file")


def refuse_other_parameters(plan: RolloutPlan) -> None:
    """Refuse to skip or resume an output (complete or partial) made with other parameters.

    Raises
    ------
    InputError
        Naming every differing key, e.g. ``members: 2 -> 3; lead: "12h" -> "18h"``.
    """
    out = Path(plan.config.out)
    for path, saved in ((out, _saved_resolved(out)), (partial_path(out), saved_config(partial_path(out)))):
        if saved is None or saved.get("config_hash") == plan.config_hash:
            continue
        what = "a complete forecast" if path == out else "an interrupted rollout"
        differences = config_differences(saved.get("resolved") or {}, plan.resolved) or ["(older output, not recorded)"]
        raise InputError(f"{path} holds {what} made with other parameters ({'; '.join(differences)}); "
                         "pass --overwrite to replace it")


def _saved_resolved(out: Path) -> dict[str, Any] | None:
    if not out.exists():
        return None
    attrs = open_forecast(out).attrs
    provenance = json.loads(attrs.get("provenance", "{}"))
    return {"config_hash": attrs.get("config_hash"), "resolved": provenance.get("resolved")}


def config_hash(resolved: dict[str, Any]) -> str:
    """16 hex digits identifying a resolved rollout configuration."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_plan(plan: RolloutPlan, ctx: DistributedContext | None = None) -> Path:
    """Create or resume the partial output of ``plan``, run this process's units, finalise.

    Process 0 creates the structure (or keeps a partial one made with the same
    configuration) and, once every process has run its units, finalises the output.
    """
    ctx = ctx or setup_distributed(plan.device.type)
    config, out = plan.config, Path(plan.config.out)
    writer = ForecastWriter(out, plan.config_hash, plan.resolved)
    units = work_units(len(plan.init_times), config.members, plan.block)
    mine = units_of_rank(units, ctx.rank, ctx.world_size)
    if ctx.is_main:
        log.info("rollout: %d member(s) x %d init time(s) x %d step(s) of %s, grid %s -> %s; %d unit(s) of <= %d "
                 "member(s) over %d process(es)", config.members, len(plan.init_times), plan.n_steps,
                 _hours(plan.time_step), plan.grid, out, len(units), plan.block, ctx.world_size)

    def create_or_resume() -> None:
        if writer.matches():
            log.info("resuming %s: complete lead times per init time %s", writer.partial,
                     completed_leads(writer.partial))
        else:
            writer.create(plan.layout())

    agree(ctx, create_or_resume if ctx.is_main else lambda: None)
    start = time.perf_counter()
    stepped = agree(ctx, lambda: run_units(plan, writer, mine, ctx.rank))
    total = sum(all_gather_objects(stepped, ctx))
    if ctx.is_main and total:
        seconds = time.perf_counter() - start
        log.info("rollout: %d member-steps in %.2f s (%.1f member-steps/s over %d process(es))", total, seconds,
                 total / seconds, ctx.world_size)
    return agree(ctx, lambda: writer.finalise({}, overwrite=config.overwrite)) if ctx.is_main else \
        agree(ctx, lambda: out)


def run_units(plan: RolloutPlan, writer: ForecastSink, units: list[WorkUnit], rank: int = 0) -> int:
    """This process's units; each lead time is handed to the background writer as soon as it
    exists. Returns the member-steps computed."""
    n_out = len(plan.output_leads)
    bar = progress_bar(total=len(units) * (n_out - 1), desc="rollout", unit="lead")
    with BackgroundWriter() as background:
        background.submit(writer.open, plan.written)
        stepped = sum(run_unit(plan, writer, background, unit, bar, rank) for unit in units)
    bar.close()
    return stepped


def run_unit(plan: RolloutPlan, writer: ForecastSink, background: BackgroundWriter, unit: WorkUnit, bar: Any,
             rank: int = 0) -> int:
    """Step one unit from its last complete output lead (or its perturbed initial state) to the
    end; returns the member-steps computed."""
    saved = writer.unit_state(unit)
    done = saved["completed"] if saved is not None else -1
    bar.update(max(done, 0))
    if done == len(plan.output_leads) - 1:
        return 0
    init_time = plan.init_times[unit.init_index]
    if saved is not None and done >= 0:
        state = saved["state"].to(plan.device)
    else:
        done, state = 0, initial_state(plan, init_time)[unit.start:unit.stop]
        _emit(plan, writer, background, unit, 0, state, rank)
    members = torch.arange(unit.start, unit.stop)
    every, noise_seed = plan.every, member_seed(plan.config.seed, init_time)
    if plan.substeps > 1:
        return _run_unit_with_intermediates(plan, writer, background, unit, bar, rank, done, state, members, noise_seed)
    for k in range(done + 1, len(plan.output_leads)):
        for s in range((k - 1) * every, k * every):
            state = plan.engine.step(state, init_time + s * plan.time_step, members, noise_seed)
            _check(plan, state, init_time, s + 1, background, writer, unit.start)
        _emit(plan, writer, background, unit, k, state, rank)
        bar.update(1)
    return unit.size * (len(plan.output_leads) - 1 - max(done, 0)) * every


def _run_unit_with_intermediates(plan: RolloutPlan, writer: ForecastSink, background: BackgroundWriter, unit: WorkUnit,
                                 bar: Any, rank: int, done: int, state: torch.Tensor, members: torch.Tensor,
                                 noise_seed: int) -> int:
    """:func:`run_unit` writing the ``h - 1`` states between model steps as well: lead ``k``
    is store step ``k`` (``h`` per model step); the resume state is saved at model steps only
    (a resumed run recomputes, bit-identically, the states after the last one)."""
    sub, init_time = plan.substeps, plan.init_times[unit.init_index]
    first = done // sub
    for step in range(first, plan.n_steps):
        path = plan.engine.step(state, init_time + step * plan.time_step, members, noise_seed, intermediate=True)
        for j in range(sub):
            lead = step * sub + j + 1
            _check(plan, path[:, j], init_time, step + (j + 1) / sub, background, writer, unit.start)
            _emit(plan, writer, background, unit, lead, path[:, j], rank, save=j == sub - 1)
            bar.update(1)
        state = path[:, -1]
    return unit.size * (plan.n_steps - first)


def initial_state(plan: RolloutPlan, init_time: pd.Timestamp) -> torch.Tensor:
    """The perturbed, normalised initial states of all members, ``(M, C, H, W)`` float32.

    Drawn for the whole ensemble from a generator seeded by the seed and the init time
    only (a centred perturbation needs every member), then cut into units; the last init
    time's states are kept, as several units of a process often share it.
    """
    if plan._initial is not None and plan._initial[0] == init_time:
        return plan._initial[1]
    x0 = _normalised_analysis(plan, init_time)[None].expand(plan.config.members, -1, -1, -1).contiguous()
    generator = torch.Generator().manual_seed(member_seed(plan.config.seed, init_time))
    with torch.inference_mode():
        state = build_perturbation(plan, init_time, x0)(x0, generator)
    _check(plan, state, init_time, 0)
    plan._initial = (init_time, state)
    return state


def _check(plan: RolloutPlan, state: torch.Tensor, init_time: pd.Timestamp, step: float,
           background: BackgroundWriter | None = None, writer: ForecastSink | None = None,
           first_member: int = 0) -> None:
    bad = plan.bounds.violation(state)
    if bad is None:
        return
    if background is not None:
        background.drain()  # keep every complete lead time before reporting
    member, variable, what = bad
    lead = plan.time_step * step
    where = f"; the complete lead times are kept in {writer.partial}" if writer is not None else ""
    raise BlowUpError(f"forecast blew up ({what}) at init time {init_time.isoformat()}, member {first_member + member}, "
                      f"lead time {_hours(lead)} (step {step:g}, valid {(init_time + lead).isoformat()}), variable "
                      f"{variable!r}{where}", step=float(step))


def _emit(plan: RolloutPlan, writer: ForecastSink, background: BackgroundWriter, unit: WorkUnit, k: int,
          state: torch.Tensor, rank: int, save: bool = True) -> None:
    """Queue output lead ``k`` of ``unit``: physical fields, then (``save``) the unit's resume state."""
    physical = plan.normaliser.denormalise(state).to("cpu", torch.float32).numpy()
    if plan.written != plan.variables:
        physical = physical[:, [plan.variables.index(v) for v in plan.written]]
    background.submit(_write, plan, writer, unit, k, physical, state.to("cpu") if save else None, rank)


def _write(plan: RolloutPlan, writer: ForecastSink, unit: WorkUnit, k: int, physical: np.ndarray,
           state: torch.Tensor | None, rank: int) -> None:
    if plan.regridder is not None:
        physical = plan.regridder.apply(physical).astype(np.float32)
    writer.write_lead(unit, k, physical)
    if state is not None:
        writer.save_unit(unit, k, state, rank)
