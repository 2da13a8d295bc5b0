"""``forecast run``: the scheduled job, safe to re-run and to resume after a crash.

For one init time it (1) optionally appends new reanalysis to the store, (2) rolls out
the ensemble into ``OUT/<init>/forecast.zarr``, (3) verifies every earlier forecast under
``OUT`` whose valid times now have truth, (4) plots, and (5) writes
``OUT/<init>/summary.json`` (timings, paths, skill).

Idempotence: a complete forecast is skipped (an interrupted one resumes from its last
complete lead time), scores are recomputed only when the truth has grown since they were
written, and existing figures are kept. A lock file ``OUT/<init>/.lock`` (``flock``)
stops two runs of the same init time from clobbering each other: the second waits up to
``lock_timeout_s`` and then fails with a one-line reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.config import RunConfig
from pipelines.atomic import atomic_path
from pipelines.errors import InputError
from pipelines.locks import LockedError, hold_lock
from pipelines.outputs import check_output

log = logging.getLogger(__name__)

RUN_DIR_FORMAT = "%Y-%m-%dT%H%M"


RunLockedError = LockedError  # another ``forecast run`` holds the lock of this init time


@dataclass
class RunSummary:
    """What one ``forecast run`` did; written as ``summary.json``."""

    init_time: str
    run_dir: str
    forecast: str | None = None
    actions: dict[str, str] = field(default_factory=dict)     # stage -> done | skipped | ...
    verified: dict[str, str] = field(default_factory=dict)    # init dir -> scores path, scored by this run
    scores: str | None = None                                  # this init time's scores, once it has any
    plots: list[str] = field(default_factory=list)
    skill: dict[str, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def run_lock(run_dir: Path, timeout_s: float) -> contextlib.AbstractContextManager[None]:
    """Hold an exclusive ``flock`` on ``run_dir/.lock`` (released when the process dies)."""
    return hold_lock(run_dir / ".lock", timeout_s, f"another `forecast run` holds the lock on {run_dir}")


def resolve_init(init: str, times: pd.DatetimeIndex) -> pd.Timestamp:
    """``latest`` -> the store's last time; otherwise an ISO time that must be in the store."""
    if init == "latest":
        return times[-1]
    try:
        stamp = pd.Timestamp(init)
    except ValueError:
        raise InputError(f"--init {init!r} is neither 'latest' nor an ISO time like 2020-01-06T00") from None
    if stamp not in times:
        raise InputError(f"init time {stamp.isoformat()} is not in the initial conditions "
                         f"({times[0].isoformat()} .. {times[-1].isoformat()})")
    return stamp


def _write_json(path: Path, payload: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def verifiable_leads(valid_times: np.ndarray, truth_times: pd.DatetimeIndex) -> int:
    """How many lead times after lead 0 have truth for at least one init time.

    ``valid_times`` is the forecast's ``valid_time`` ``(init_time, lead_time)``; lead 0 is
    the (perturbed) analysis itself, so truth there alone verifies nothing.
    """
    later = pd.DatetimeIndex(np.asarray(valid_times)[:, 1:].ravel())
    return int(later.isin(truth_times).reshape(np.asarray(valid_times)[:, 1:].shape).any(axis=0).sum())


def verify_ready(out: Path, config: RunConfig, truth_times: pd.DatetimeIndex, summary: RunSummary) -> None:
    """Score every complete forecast under ``out`` whose valid times now have more truth.

    A forecast with no truth yet after lead 0 (the newest init time, in a scheduled run)
    is left for a later run: it gets scored once its first lead times have truth.
    """
    from forecast.forecast_file import is_complete, open_forecast
    from forecast.verify.workflow import verify

    truth_end = truth_times[-1].isoformat()
    for run_dir in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        forecast_path = run_dir / "forecast.zarr"
        if not is_complete(forecast_path):
            continue
        state = _read_json(run_dir / "verified.json")
        scores = run_dir / "scores.nc"
        if state.get("truth_end") == truth_end and scores.exists():
            continue
        leads = verifiable_leads(open_forecast(forecast_path)["valid_time"].values, truth_times)
        if leads == 0:
            log.info("%s: no truth yet after lead 0; it will be verified by a later run", run_dir.name)
            continue
        verify(config.verify.model_copy(update={"forecast": str(forecast_path), "out": str(scores)}))
        _write_json(run_dir / "verified.json", {"truth_end": truth_end, "verified_lead_times": leads})
        summary.verified[run_dir.name] = str(scores)


def _headline_skill(scores_path: Path) -> dict[str, dict[str, float]]:
    from forecast.verify.scores_file import open_scores

    ds = open_scores(scores_path)
    skill: dict[str, dict[str, float]] = {}
    for name in ds.data_vars:
        rmse = ds[name].sel(model="forecast", metric="rmse", region="global")
        skill[str(name)] = {f"rmse_{int(pd.Timedelta(lt).total_seconds() // 3600)}h": float(v)
                            for lt, v in zip(rmse["lead_time"].values, rmse.values) if np.isfinite(v)}
    return skill


def check_run_output(config: RunConfig) -> Path:
    """``config.out``, refused before any work when it is, contains or lies inside an input
    (the store, the checkpoints, the truth, the climatology, the appended files) or a file."""
    from forecast.checkpoint import checksum_path

    checkpoints = list(config.rollout.checkpoints)
    inputs = {"store": config.store, "rollout.initial": config.rollout.initial,
              "rollout.checkpoints": checkpoints + [checksum_path(c) for c in checkpoints],
              "verify.truth": config.verify.truth, "verify.climatology": config.verify.climatology,
              "prepare.inputs": list(config.prepare.inputs) if config.prepare is not None else None}
    return check_output(config.out, inputs, "out", "dir")


def run(config: RunConfig, init: str = "latest") -> RunSummary:
    """Run the scheduled job for ``init`` (``latest`` or an ISO time); see the module docstring."""
    from forecast.plots.workflow import plot_run
    from forecast.forecast_file import is_complete
    from forecast.rollout import rollout
    from pipelines.store import open_store

    out = check_run_output(config)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if config.prepare is not None:
        from pipelines.prepare import prepare

        before = open_store(config.prepare.out).times.size
        # a drop directory keeps earlier deliveries: only times after the store's end are new
        prepare(config.prepare.model_copy(update={"append": True, "append_new_only": True}), command="forecast run")
        appended = open_store(config.prepare.out).times.size - before
        timings["prepare"] = round(time.perf_counter() - t0, 2)
    initial = config.rollout.initial or config.store
    times = open_store(initial).times
    init_time = resolve_init(init, times)
    run_dir = out / init_time.strftime(RUN_DIR_FORMAT)
    summary = RunSummary(init_time=init_time.isoformat(), run_dir=str(run_dir))
    if config.prepare is not None:
        summary.actions["prepare"] = f"{appended} new time(s) appended" if appended else "skipped (no new times)"
    with run_lock(run_dir, config.lock_timeout_s):
        forecast_path = run_dir / "forecast.zarr"
        t = time.perf_counter()
        summary.actions["rollout"] = "skipped (complete)" if is_complete(forecast_path) else "done"
        rollout(config.rollout.model_copy(update={"init_times": [init_time.isoformat()], "out": str(forecast_path),
                                                  "initial": initial, "overwrite": False}))
        summary.forecast, timings["rollout"] = str(forecast_path), round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        verify_ready(out, config, open_store(config.verify.truth).times, summary)
        summary.actions["verify"] = f"{len(summary.verified)} forecast(s) scored" if summary.verified else "skipped"
        timings["verify"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        scores = run_dir / "scores.nc"
        plot = config.plot.model_copy(update={"regrid_method": config.verify.regrid_method})   # as the scores'
        summary.plots = [str(p) for p in plot_run(forecast_path, config.verify.truth,
                                                  scores if scores.exists() else None, run_dir / "plots", plot)]
        timings["plot"] = round(time.perf_counter() - t, 2)
        if scores.exists():
            summary.scores, summary.skill = str(scores), _headline_skill(scores)
        timings["total"] = round(time.perf_counter() - t0, 2)
        summary.timings = timings
        _write_json(run_dir / "summary.json", asdict(summary))
    return summary
