"""``forecast inspect PATH``: what a file of this project holds, in a few lines.

Recognises a training store (``forecast prepare``), a checkpoint (``forecast train``),
a forecast or a partial one (``forecast rollout``), a scores file (``forecast verify``)
and, failing those, any NetCDF/Zarr dataset; returns the summary as lines of text.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.tensorfile import is_safetensors
from pipelines.errors import InputError

__all__ = ["inspect_path"]


def inspect_path(path: str | Path) -> list[str]:
    """Summary lines of ``path``.

    Raises
    ------
    InputError
        If ``path`` does not exist or is not readable as any of the known kinds.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.suffix == ".pt" or (path.is_file() and is_safetensors(path)):
        return _checkpoint(path)
    if path.is_dir():
        for reader in (_store, _forecast):
            try:
                return reader(path)
            except InputError:
                continue
        return _dataset(path, xr.open_zarr(path, consolidated=None) if _is_zarr(path) else None)
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            dims = set(ds.dims)
    except Exception as exc:  # the backends raise many types for a foreign file
        raise InputError(f"{path} is not a NetCDF, Zarr or checkpoint file ({type(exc).__name__})") from None
    if {"model", "metric", "lead_time", "region"} <= dims:
        return _scores(path)
    if {"member", "init_time", "lead_time"} <= dims:
        return _forecast(path)
    return _dataset(path, xr.open_dataset(path, engine="netcdf4"))


def _is_zarr(path: Path) -> bool:
    return (path / "zarr.json").exists() or (path / ".zgroup").exists()


def _times(times: pd.DatetimeIndex) -> str:
    if len(times) == 0:
        return "none"
    step = f", step {pd.Timedelta(times[1] - times[0])}" if len(times) > 1 else ""
    return f"{len(times)}: {times[0]:%Y-%m-%d %H:%M} .. {times[-1]:%Y-%m-%d %H:%M}{step}"


def _store(path: Path) -> list[str]:
    from pipelines.store import open_store

    store = open_store(path)
    provenance = store.provenance()
    lines = [f"{path}: training store (forecast prepare)",
             f"  grid       {store.grid}",
             f"  variables  {', '.join(store.variables)}",
             f"  times      {_times(store.times)}",
             f"  statistics {'yes' if store.statistics is not None else 'no'}, climatology "
             f"{'yes' if store.climatology is not None else 'no'}, static "
             f"{', '.join(map(str, store.static.data_vars)) if store.static is not None else 'none'}"]
    if provenance:
        lines.append(f"  made by    {provenance.get('command', '?')} (source grid {provenance.get('source_grid', '?')})")
    return lines


def _checkpoint(path: Path) -> list[str]:
    from forecast.checkpoint import load_checkpoint
    from forecast.models import build_model, count_parameters
    from forecast.forcings import forcing_names

    ckpt = load_checkpoint(path)
    model = build_model(ckpt.model_config, ckpt.grid, len(ckpt.variables), len(forcing_names(ckpt.static_names)))
    return [f"{path}: checkpoint (forecast train), sha256 {ckpt.sha256[:16]}... verified",
            f"  model      {ckpt.model_config.architecture}, embed_dim {ckpt.model_config.embed_dim}, "
            f"{ckpt.model_config.num_layers} layers, {count_parameters(model):,} parameters",
            f"  grid       {ckpt.grid}, time step {ckpt.time_step_seconds / 3600:g} h",
            f"  variables  {', '.join(ckpt.variables)}; static {', '.join(ckpt.static_names) or 'none'}",
            f"  trained    step {ckpt.step}, epoch {ckpt.epoch}, version {ckpt.version}"]


def _forecast(path: Path) -> list[str]:
    from forecast.forecast_file import open_forecast
    from forecast.rollout.io import completed_leads

    ds = open_forecast(path)
    lead = pd.TimedeltaIndex(ds["lead_time"].values)
    step = lead[1] - lead[0] if len(lead) > 1 else pd.Timedelta(0)
    state = "complete" if int(ds.attrs.get("complete", 0)) == 1 else "incomplete"
    if path.name.endswith(".partial"):
        state = f"partial, complete lead times per init time {completed_leads(path)}"
    provenance = json.loads(ds.attrs.get("provenance", "{}"))
    checkpoints = [Path(c["path"]).name for c in provenance.get("checkpoints", [])]
    return [f"{path}: forecast (forecast rollout), {state}",
            f"  members    {ds.sizes['member']}, seed {ds.attrs.get('seed', '?')}",
            f"  init times {_times(pd.DatetimeIndex(ds['init_time'].values))}",
            f"  lead times {len(lead)}: {lead[0] / pd.Timedelta(hours=1):g} .. {lead[-1] / pd.Timedelta(hours=1):g} h"
            f", every {step / pd.Timedelta(hours=1):g} h",
            f"  grid       {ds.attrs.get('grid', '?')} (model grid {ds.attrs.get('model_grid', '?')})",
            f"  variables  {', '.join(_with_units(ds))}",
            f"  made from  {', '.join(checkpoints) or '?'}; config_hash {ds.attrs.get('config_hash', '?')}"]


def _with_units(ds: xr.Dataset) -> list[str]:
    return [f"{name} ({ds[name].attrs.get('units', '?')})" for name in ds.data_vars]


def _scores(path: Path) -> list[str]:
    from forecast.verify.scores_file import open_scores

    ds = open_scores(path)
    lead = pd.TimedeltaIndex(ds["lead_time"].values) / pd.Timedelta(hours=1)
    lines = [f"{path}: scores (forecast verify), {ds.attrs.get('ensemble_members', '?')} member(s)",
             f"  models     {', '.join(map(str, ds['model'].values))}",
             f"  metrics    {', '.join(map(str, ds['metric'].values))}",
             f"  regions    {', '.join(map(str, ds['region'].values))}",
             f"  lead times {len(lead)}: {lead[0]:g} .. {lead[-1]:g} h"]
    for name in ds.data_vars:
        rmse = ds[name].sel(model="forecast", metric="rmse", region="global") if "rmse" in ds["metric"].values else None
        if rmse is not None and np.isfinite(rmse.values).any():
            last = int(np.flatnonzero(np.isfinite(rmse.values))[-1])
            lines.append(f"  {name:<10} RMSE {float(rmse.values[last]):.4g} {ds[name].attrs.get('units', '')} "
                         f"at {lead[last]:g} h")
    return lines


def _dataset(path: Path, ds: xr.Dataset | None) -> list[str]:
    if ds is None:
        raise InputError(f"{path} is a directory that is neither a Zarr store nor a known output")
    return [f"{path}: dataset (not made by this project, or not recognised)",
            f"  dims       {', '.join(f'{k}={v}' for k, v in ds.sizes.items())}",
            f"  variables  {', '.join(map(str, ds.data_vars))}"]
