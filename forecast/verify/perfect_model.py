r"""The perfect-model baseline of the embedded data: the generator itself as the forecast.

For a store made from the embedded shallow-water source with stirring
(``forecast prepare --source swe`` with ``swe.stirring``), the perfect-model ensemble starts
every member from the true state at each init time (the store's own fields, turned back into
the solver's spectral state) and integrates the same equations with the same solver, each
member with a stirring drawn from a seed of its own
(:mod:`pipelines.sources.swe_ensemble`). What it gets wrong comes from the unknown stirring
alone, so its CRPS and ensemble-mean RMSE are the physical limit of skill on these data,
the anchor of every skill goal; no forecast of the state alone can expect better.

Its states are synthesised on the solver's grid and regridded onto the store's with the
store's own method, exactly as the pipeline made the truth. It is written in the layout of a rollout (:mod:`forecast.rollout.io`: dims ``member,
init_time, lead_time, lat, lon``, lead 0 the true state) on the store's grid, so
``forecast verify --perfect-model FILE`` scores it beside persistence and climatology.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import xarray as xr

from pipelines.config import SWESourceConfig
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.regrid import make_regridder
from pipelines.outputs import check_output
from pipelines.progress import progress
from pipelines.sources.swe import parameters_from_config
from pipelines.sources.swe_ensemble import SpectralState, ensemble_states, member_stirring_seed
from pipelines.store import TrainingStore, open_store

__all__ = ["perfect_model_forecast", "source_parameters", "SWE_VARIABLES"]

log = logging.getLogger(__name__)

SWE_VARIABLES = ("gh", "u", "v", "vo")   # the order of SpectralState's fields
BATCH_RUNS = 64                          # runs integrated in one batch (larger GEMMs, bounded memory)


def source_parameters(store: TrainingStore) -> SWESourceConfig:
    """The shallow-water source settings a store was prepared from (its provenance).

    Raises
    ------
    InputError
        If the store was not made from the embedded source, or from the unforced flow.
    """
    config = store.provenance().get("config") or {}
    if config.get("source") != "swe" or "swe" not in config:
        raise InputError(f"the perfect-model baseline needs a store prepared from the embedded shallow-water source "
                         f"(forecast prepare --source swe); {store.path} was prepared from {config.get('source', 'files')}")
    swe = SWESourceConfig.model_validate(config["swe"])
    if swe.stirring is None:
        raise InputError(f"{store.path} holds the unforced shallow-water flow, which is deterministic: its perfect "
                         "model is the truth itself; prepare it with swe.stirring for a perfect-model baseline")
    return swe


def _lead_hours(lead_times: pd.TimedeltaIndex) -> list[float]:
    hours = [float(t / pd.Timedelta(hours=1)) for t in lead_times]
    if not hours or hours[0] != 0 or any(b <= a for a, b in zip(hours, hours[1:])):
        raise InputError(f"perfect-model lead times must start at 0 and increase, got {hours}")
    return hours


def _store_fields(solver_grid: Grid, store: TrainingStore) -> Callable[[torch.Tensor], np.ndarray]:
    """Spectral states -> fields on the store's grid ``(B, 4, H, W)`` float32, made as the truth was:
    synthesised on the solver's grid (where the source writes them), then regridded by the
    pipeline's own regridder with the store's method (winds as the pipeline regrids them)."""
    synthesis = SpectralState(solver_grid)
    if solver_grid == store.grid:
        return lambda state: synthesis.to_fields(state).numpy().astype(np.float32)
    regridder = make_regridder(str(store.data.attrs.get("regrid_method", "spectral")), solver_grid, store.grid)
    dims = ("run", "lat", "lon")

    def to_store(state: torch.Tensor) -> np.ndarray:
        fields = synthesis.to_fields(state).numpy()
        ds = xr.Dataset({v: (dims, fields[:, i]) for i, v in enumerate(SWE_VARIABLES)}, coords=solver_grid.coords())
        out = regridder(ds)
        return np.stack([out[v].values for v in SWE_VARIABLES], axis=1).astype(np.float32)

    return to_store


def _true_states(store: TrainingStore, init_times: pd.DatetimeIndex, reader: SpectralState) -> torch.Tensor:
    """The store's states at ``init_times`` as spectral states ``(N, 3, L, M)``."""
    missing = [str(t) for t in init_times if t not in store.times]
    if missing:
        raise InputError(f"init times {', '.join(missing[:3])} are not in {store.path}")
    absent = [v for v in SWE_VARIABLES if v not in store.variables]
    if absent:
        raise InputError(f"the perfect-model baseline needs {', '.join(SWE_VARIABLES)} in the store; {store.path} "
                         f"lacks {', '.join(absent)}")
    fields = np.stack([store.data[v].sel(time=init_times).values for v in SWE_VARIABLES], axis=1)
    return reader.to_spectral(torch.from_numpy(fields.astype(np.float64)))


def perfect_model_forecast(store_path: str | Path, init_times: list[pd.Timestamp], lead_times: pd.TimedeltaIndex,
                           members: int, out: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Run the perfect-model ensemble and write it as a forecast file.

    Parameters
    ----------
    store_path
        A training store made from the stirred shallow-water source.
    init_times
        Init times (in the store).
    lead_times
        Written lead times, from 0, increasing, whole numbers of the solver's sub-step.
    members
        Ensemble size (as many as the forecast it is compared with).
    out
        ``.zarr`` or ``.nc`` forecast file, written atomically.
    seed
        Seed of the members' stirring (independent of the truth's).

    Returns
    -------
    Path
        ``out``; dims ``(member, init_time, lead_time, lat, lon)`` on the store's grid, the
        store's variables among ``gh, u, v, vo``, physical units.
    """
    from forecast.rollout.io import ForecastLayout, ForecastWriter, cf_attributes
    from forecast.rollout.shards import work_units

    out = Path(out)
    if out.suffix not in (".zarr", ".nc"):
        raise InputError(f"perfect-model output {out} must end in .zarr or .nc")
    out = check_output(out, {"--store": store_path}, "--out", "dir" if out.suffix == ".zarr" else "file")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; pass --overwrite to replace it")
    store = open_store(store_path)
    params, _ = parameters_from_config(source_parameters(store))
    reader = SpectralState(store.grid)
    to_store = _store_fields(params.grid, store)
    inits = pd.DatetimeIndex(sorted(init_times))
    hours = _lead_hours(pd.TimedeltaIndex(lead_times))
    variables = [v for v in SWE_VARIABLES if v in store.variables]
    starts = _true_states(store, inits, reader)
    attrs = {"Conventions": "CF-1.8", "title": "perfect-model ensemble (the data's own generator, stirring unknown)",
             "source": params.describe(), "grid": str(store.grid), "seed": int(seed), "initial": str(store.path)}
    layout = ForecastLayout(variables=variables, members=members, init_times=inits,
                            lead_times=pd.TimedeltaIndex(lead_times), grid=store.grid,
                            variable_attrs={v: cf_attributes(v, store.data[v].attrs) for v in variables}, attrs=attrs)
    writer = ForecastWriter(out, config_hash=f"perfect-model-{seed}")
    writer.create(layout)
    writer.open(variables)
    keep = [SWE_VARIABLES.index(v) for v in variables]
    units = work_units(len(inits), members, members)          # one unit per init time
    per_batch = max(1, BATCH_RUNS // members)                  # init times integrated together
    for first in progress(range(0, len(units), per_batch), desc="perfect model", unit="batch"):
        batch = units[first:first + per_batch]
        seeds = [member_stirring_seed(seed, int(inits[u.init_index].value // 3_600_000_000_000), m)
                 for u in batch for m in range(members)]
        start = starts[[u.init_index for u in batch]].repeat_interleave(members, dim=0)
        for k, state in enumerate(ensemble_states(params, start, seeds, hours)):
            fields = to_store(state)[:, keep]
            for j, unit in enumerate(batch):
                writer.write_lead(unit, k, fields[j * members:(j + 1) * members])
    log.info("perfect model: %d init time(s) x %d member(s) to %g h", len(inits), members, hours[-1])
    return writer.finalise({"complete": 1}, overwrite=overwrite)
