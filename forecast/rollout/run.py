"""``forecast rollout``: checkpoints + initial conditions -> streamed ensemble forecast.

:func:`rollout` claims the output (:mod:`forecast.rollout.output`), resolves the
configuration into a :class:`~forecast.rollout.plan.RolloutPlan`, then for each unit (an
init time and a block of members, :mod:`forecast.rollout.shards`) perturbs the analysis,
steps the members autoregressively and hands every lead time to the writer as soon as it is
produced (see :mod:`forecast.rollout.io` for the file layout, the streaming and the resume).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from forecast.config import RolloutConfig
from forecast.distributed import (DistributedContext, agree, all_gather_objects, broadcast_object,
                                  cleanup_distributed, setup_distributed)
from forecast.rollout.background import BackgroundWriter
from forecast.rollout.engine import BlowUpError
from forecast.rollout.io import ForecastSink, ForecastWriter
from forecast.rollout.output import check_output_path, claim_output, create_or_resume, is_done
from forecast.rollout.plan import RolloutPlan
from forecast.rollout.shards import WorkUnit, units_of_rank, work_units
from forecast.rollout.times import hours
from pipelines.progress import progress_bar

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["rollout", "run_plan", "run_units", "run_unit", "initial_state", "member_seed"]

log = logging.getLogger(__name__)


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
            agree(ctx, lambda: claim_output(out, config, stack) if ctx.is_main else None)
            plan = agree(ctx, lambda: RolloutPlan.build(config, ctx.device))
            skip = agree(ctx, lambda: is_done(out, config.overwrite, plan.config_hash, plan.resolved)
                         if ctx.is_main else None)
            if broadcast_object(skip, ctx):
                log.info("%s is complete and made with the same parameters; skipping (--overwrite recomputes it)", out)
                return out
            return run_plan(plan, ctx)
    finally:
        cleanup_distributed(ctx)


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
                 hours(plan.time_step), plan.grid, out, len(units), plan.block, ctx.world_size)
    agree(ctx, (lambda: create_or_resume(writer, plan.layout())) if ctx.is_main else lambda: None)
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


def run_unit(plan: RolloutPlan, writer: ForecastSink, background: BackgroundWriter, unit: WorkUnit,
             bar: tqdm, rank: int = 0) -> int:
    """Step one unit from its last complete output lead (or its perturbed initial state) to the
    end; returns the member-steps computed.

    Each model step gives :attr:`~RolloutPlan.substeps` states ``h`` (the DYffusion horizon
    with ``intermediate``, else 1): store step ``n`` (``h`` per model step) is output lead
    ``n / every`` where ``every`` divides it. The resume state is saved at model steps only
    (a resumed run recomputes, bit-identically, the states after the last one).
    """
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
    sub, every, noise_seed = plan.substeps, plan.every, member_seed(plan.config.seed, init_time)
    first = done * every // sub
    for step in range(first, plan.n_steps):
        new = plan.engine.step(state, init_time + step * plan.time_step, members, noise_seed, intermediate=sub > 1)
        path = new if sub > 1 else new[:, None]   # (B, h, C, H, W)
        for j in range(sub):
            _check(plan, path[:, j], init_time, step + (j + 1) / sub, background, writer, unit.start)
            store_step = step * sub + j + 1
            if store_step % every == 0:
                _emit(plan, writer, background, unit, store_step // every, path[:, j], rank, save=j == sub - 1)
                bar.update(1)
        state = path[:, -1]
    return unit.size * (plan.n_steps - first)


def member_seed(seed: int, init_time: pd.Timestamp) -> int:
    """The generator seed of one init time: depends on ``seed`` and the time only (not on the others)."""
    hours_since_1970 = int(pd.Timestamp(init_time).value // 3_600_000_000_000)
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, hours_since_1970 & 0xFFFFFFFF]).generate_state(1)[0])


def initial_state(plan: RolloutPlan, init_time: pd.Timestamp) -> torch.Tensor:
    """The perturbed, normalised initial states of all members, ``(M, C, H, W)`` float32.

    Drawn for the whole ensemble from a generator seeded by the seed and the init time
    only (a centred perturbation needs every member), then cut into units; the last init
    time's states are kept, as several units of a process often share it.
    """
    if plan._initial is not None and plan._initial[0] == init_time:
        return plan._initial[1]
    assert plan.perturbations is not None, "RolloutPlan.build sets the perturbations"
    x0 = plan.analysis(init_time)[None].expand(plan.config.members, -1, -1, -1).contiguous()
    generator = torch.Generator().manual_seed(member_seed(plan.config.seed, init_time))
    with torch.inference_mode():
        state = plan.perturbations(init_time, x0)(x0, generator)
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
                      f"lead time {hours(lead)} (step {step:g}, valid {(init_time + lead).isoformat()}), variable "
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
