"""``forecast verify``: score a rollout and its baselines against the truth, write ``scores.nc``.

Output (NetCDF4, written atomically)
------------------------------------
Root group (CF-1.8), one float64 data variable per physical variable, dims
``(model, metric, lead_time, region)``:

* ``model``: ``forecast`` then the requested baselines (``persistence``, ``climatology``);
* ``metric``: as requested (default ``rmse mse mae bias acc ens_rmse ens_mae spread spread_skill
  crps crps_fair``); coordinate ``metric_long_name`` describes each, and the data
  variable's ``units`` are those of the physical variable (``mse`` is in units squared,
  ``acc`` and ``spread_skill`` are dimensionless: see :func:`metric_units`);
* ``lead_time``: float64 hours (CF ``units: hours``, read back as timedelta64);
* ``region``: ``global``, ``nh-extratropics`` (20N-90N), ``tropics`` (20S-20N),
  ``sh-extratropics`` (90S-20S).

Group ``rank_histogram``: per variable, dims ``(lead_time, region, rank)``, the
area-weighted relative frequency of the truth's rank among the forecast members (only
when the forecast has at least 2 members). Group ``spectra``: per variable, dims
``(source, lead_time, wavenumber)`` with ``source`` = ``forecast``, ``truth``, the global
power spectrum (:mod:`forecast.verify.spectra`) averaged over members and init times.
Read them with :func:`open_scores`.

Conventions
-----------
The deterministic metrics (``rmse``, ``mse``, ``mae``, ``bias``, ``acc``) score every
member as a deterministic forecast and pool the members (RMSE = square root of the mean
MSE over members, init times and area; ACC = mean over members and init times of the
spatial uncentred ACC). ``ens_rmse`` and ``ens_mae`` are the RMSE and MAE of the ensemble mean. Baselines are
scored as one-member ensembles: ``ens_rmse`` equals ``rmse``, ``ens_mae`` equals ``mae``, ``crps`` equals ``mae``,
and ``spread``, ``spread_skill`` and ``crps_fair`` are NaN (undefined for one member); so
are they for a one-member forecast. ``acc`` is NaN when no climatology is available.
Truth is looked up at each valid time; a valid time without truth is left out (NaN).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.config import VerifyConfig
from forecast.forecast_file import open_forecast
from forecast.verify.accumulate import Accumulator, finalise, lead_partials, over_inits, rank_counts
from forecast.verify.registry import METRICS, metric_units
from forecast.verify.scores_file import open_scores, write_scores
from forecast.verify.baselines import climatology_forecast, persistence, valid_times
from forecast.verify.regions import check_regions, regional_weights
from forecast.verify.spectra import power_spectrum, squared_units
from forecast.verify.truth import on_grid, onto_grid, open_truth, select_truth_variables
from pipelines.errors import InputError
from pipelines.grids import Grid, standardise_latlon
from pipelines.outputs import check_output
from pipelines.progress import progress

log = logging.getLogger(__name__)

__all__ = ["verify", "open_scores", "metric_units", "METRICS"]   # the last three re-exported

MEMBER = "member"
SPECTRA_SOURCES = ("forecast", "perfect_model")   # ensembles whose spectra are kept beside the truth's
SPACE = ("lat", "lon")

# -- inputs --------------------------------------------------------------------------------
def _open_climatology(path: str | None, fallback: xr.Dataset | None) -> xr.Dataset | None:
    if path is None:
        return fallback
    from pipelines.store import open_store

    clim = open_store(path).climatology
    if clim is None:
        raise InputError(f"{path} has no climatology group; pass a store prepared with a climatology")
    return standardise_latlon(clim)


def _check_inputs(forecast: xr.Dataset, truth: xr.Dataset, config: VerifyConfig) -> tuple[list[str], Grid]:
    missing = sorted({MEMBER, "init_time", "lead_time", "lat", "lon"} - set(forecast.dims))
    if missing:
        raise InputError(f"{config.forecast} lacks the forecast dims {', '.join(missing)}")
    variables = [str(v) for v in forecast.data_vars if set(forecast[v].dims) >= set(SPACE)]
    if not variables:
        raise InputError(f"{config.forecast} has no (lat, lon) data variable to verify")
    return variables, Grid.from_coords(forecast)


# -- the command ---------------------------------------------------------------------------
def verify(config: VerifyConfig) -> Path:
    """Score ``config.forecast`` and the baselines against ``config.truth``; write ``config.out``.

    Streams over lead times and chunks of ``config.init_chunk`` init times (peak memory does
    not grow with the number of init times); reads the inputs through a ``dask.distributed``
    cluster when ``config.scheduler`` names one. Truth and climatology on another grid than
    the forecast are regridded onto it with ``config.regrid_method``.

    Raises
    ------
    InputError
        Missing or unreadable inputs, a grid mismatch without ``regrid_method``, no truth
        at any valid time, or a climatology baseline without a climatology.
    """
    if Path(config.out).suffix != ".nc":
        raise InputError(f"scores output {config.out} must end in .nc (scores are one NetCDF4 file with groups)")
    out = check_output(config.out, {"--forecast": config.forecast, "--truth": config.truth,
                                    "--climatology": config.climatology, "--perfect-model": config.perfect_model})
    config = config.model_copy(update={"out": str(out)})
    if config.scheduler is None:
        return _verify(config)
    from pipelines.cluster import get_client

    with get_client(config.scheduler):
        return _verify(config)


def _verify(config: VerifyConfig) -> Path:
    regions = check_regions(config.regions)
    metrics: list[str] = list(config.metrics)
    forecast = standardise_latlon(open_forecast(config.forecast))
    truth_all, store_clim = open_truth(config.truth)
    truth_all = standardise_latlon(truth_all)
    variables, grid = _check_inputs(forecast, truth_all, config)
    truth_all = onto_grid(select_truth_variables(truth_all, variables), grid, config.regrid_method, "truth")
    forecast = on_grid(forecast, grid)
    clim = _open_climatology(config.climatology, store_clim)
    if clim is not None:
        clim = standardise_latlon(clim)
        clim = onto_grid(select_truth_variables(clim, variables), grid, config.regrid_method, "climatology")
    if "climatology" in config.baselines and clim is None:
        raise InputError(f"the climatology baseline needs a climatology: {config.truth} has none; pass --climatology STORE")
    forecast = forecast[variables]
    init, lead = pd.DatetimeIndex(forecast["init_time"].values), pd.TimedeltaIndex(forecast["lead_time"].values)
    valid = valid_times(init, lead)
    if not np.isin(valid.values.ravel(), truth_all["time"].values).any():
        raise InputError(f"the truth {config.truth} covers {truth_all['time'].values.min()} .. "
                         f"{truth_all['time'].values.max()}, none of the forecast's valid times "
                         f"{valid.values.min()} .. {valid.values.max()}")
    models = {"forecast": forecast}
    if "persistence" in config.baselines:
        models["persistence"] = persistence(truth_all, init, lead).expand_dims({MEMBER: [0]})
    if "climatology" in config.baselines and clim is not None:   # refused above without one
        models["climatology"] = climatology_forecast(clim, init, lead).expand_dims({MEMBER: [0]})
    if config.perfect_model is not None:
        models["perfect_model"] = _open_perfect_model(config.perfect_model, forecast, grid)
    clim_valid = climatology_forecast(clim, init, lead) if clim is not None else None
    scores, hists, spectra, init_sums = _score_all(models, truth_all, clim_valid, valid, grid, metrics, regions,
                                                   config.init_chunk)
    members = {name: int(model.sizes[MEMBER]) for name, model in models.items()}
    return _write(config, scores, hists, spectra, init_sums.assign_attrs(members=json.dumps(members)), forecast,
                  truth_all)


def _open_perfect_model(path: str, forecast: xr.Dataset, grid: Grid) -> xr.Dataset:
    """The perfect-model ensemble (:mod:`forecast.verify.perfect_model`) at the forecast's init
    and lead times, variables and grid; refused when it does not cover them."""
    ensemble = standardise_latlon(open_forecast(path))
    if Grid.from_coords(ensemble) != grid:
        raise InputError(f"the perfect-model ensemble {path} is on grid {Grid.from_coords(ensemble)}, the forecast on "
                         f"{grid}; make it from the store the forecast is on")
    missing = [str(v) for v in forecast.data_vars if v not in ensemble.data_vars]
    inits, leads = forecast["init_time"].values, forecast["lead_time"].values
    absent = [str(t) for t in inits if t not in ensemble["init_time"].values]
    absent += [str(t) for t in leads if t not in ensemble["lead_time"].values]
    if missing or absent:
        raise InputError(f"the perfect-model ensemble {path} lacks {', '.join(missing + absent[:3])} of the forecast; "
                         "make it with the forecast's init times, lead times and variables")
    chosen = ensemble[list(forecast.data_vars)].sel(init_time=inits, lead_time=leads)
    return on_grid(chosen, grid)


def _load(ds: xr.Dataset, lead: int | None, inits: slice) -> xr.DataArray:
    """One lead time and one chunk of init times of every variable in memory, float64, stacked
    along ``variable`` (one xarray operation per metric instead of one per variable)."""
    ds = ds.isel(lead_time=lead) if lead is not None else ds
    ds = ds.isel(init_time=inits)
    ds = ds.drop_vars([c for c in ds.coords if c not in ds.dims])
    return ds.astype(np.float64).load().to_dataarray("variable")


def _score_all(models: dict[str, xr.Dataset], truth_all: xr.Dataset, clim_valid: xr.Dataset | None,
               valid: xr.DataArray, grid: Grid, metrics: list[str], regions: list[str], init_chunk: int):
    """Stream over lead times and chunks of ``init_chunk`` init times: load one chunk of every
    input, add its partial sums (:mod:`forecast.verify.accumulate`), keep only the sums.
    Peak memory is one chunk of every member, whatever the number of init times."""
    weights = regional_weights(grid.area_weights(), regions)
    n_members = models["forecast"].sizes[MEMBER]
    n_init = valid.sizes["init_time"]
    chunks = [slice(a, min(a + init_chunk, n_init)) for a in range(0, n_init, init_chunk)]
    per_lead, hists, spectra, per_init = [], [], [], []
    for i in progress(range(valid.sizes["lead_time"]), desc="verify"):
        sums = {name: Accumulator() for name in models}
        init_sums = _InitSums()
        counts, template, power = None, None, Accumulator()   # power: (sum, count) of spectra
        for inits in chunks:
            times = valid.isel(lead_time=i, init_time=inits)
            truth = _load(truth_all.reindex(time=times.values).rename(time="init_time"), None, slice(None))
            truth = truth.assign_coords(init_time=times["init_time"].values)
            clim = _load(clim_valid, i, inits) if clim_valid is not None else None
            for name, model in models.items():
                fc = _load(model, i, inits).assign_coords(init_time=times["init_time"].values)
                partials = lead_partials(fc, truth, clim, weights, metrics)
                sums[name].add(over_inits(partials))
                init_sums.add(name, partials)
                if name in SPECTRA_SOURCES:
                    power.add(_power_sums(name, fc, grid))
                if name == "forecast":
                    template = xr.dot(truth.isel(init_time=0, lon=0, drop=True), weights, dim="lat")
                    power.add(_power_sums("truth", truth, grid))
                    if n_members > 1:
                        part = rank_counts(fc, truth, weights)
                        counts = part if counts is None else counts + part
        assert template is not None   # made from the forecast, always among the models
        scores: list[xr.DataArray] = [finalise(sums[name], metrics, models[name].sizes[MEMBER], template)
                                      for name in models]
        per_lead.append(xr.concat(scores, dim="model").assign_coords(model=list(models)))
        per_init.append(init_sums.stacked())
        if counts is not None:
            hists.append(counts / counts.sum("rank"))
        sources = [k for k in ("forecast", "truth", "perfect_model") if k in power.totals]
        spectra.append(xr.concat([power.totals[k][0] / power.totals[k][1] for k in sources], dim="source")
                       .assign_coords(source=sources))

    def _stack(parts: list[xr.DataArray], *dims: str) -> xr.Dataset:
        out = xr.concat(parts, dim="lead_time").assign_coords(lead_time=valid["lead_time"].values)
        return out.transpose("variable", *dims).to_dataset("variable")

    return (_stack(per_lead, "model", "metric", "lead_time", "region"),
            _stack(hists, "lead_time", "region", "rank") if hists else None,
            _stack(spectra, "source", "lead_time", "wavenumber"),
            _stack(per_init, "model", "part", "sum", "lead_time", "region", "init_time"))


class _InitSums:
    """The partial sums of one lead time kept per init time, chunk by chunk, for the bootstrap
    (:mod:`forecast.verify.bootstrap`): ``(model, part, sum, variable, init_time, region)`` with
    ``sum`` = ``value`` (sum of w x) or ``weight`` (sum of w)."""

    def __init__(self) -> None:
        self.chunks: dict[str, list[dict[str, tuple[xr.DataArray, xr.DataArray]]]] = {}

    def add(self, model: str, partials: dict[str, tuple[xr.DataArray, xr.DataArray]]) -> None:
        self.chunks.setdefault(model, []).append(partials)

    def stacked(self) -> xr.DataArray:
        per_model = []
        for chunks in self.chunks.values():
            names = list(chunks[0])
            parts = [xr.concat([xr.concat(list(chunk[n]), dim="sum") for n in names], dim="part") for chunk in chunks]
            per_model.append(xr.concat(parts, dim="init_time").assign_coords(part=names, sum=["value", "weight"]))
        return xr.concat(per_model, dim="model", join="outer").assign_coords(model=list(self.chunks))


def _power_sums(name: str, fields: xr.DataArray, grid: Grid) -> dict[str, tuple[xr.DataArray, xr.DataArray]]:
    """``{name: (sum of spectra, number of spectra)}`` over members (if any) and init times (a
    field with a NaN has a NaN spectrum and is left out)."""
    power = power_spectrum(fields, grid)
    dims = [d for d in (MEMBER, "init_time") if d in power.dims]
    return {name: (power.sum(dims), power.notnull().sum(dims))}


# -- output --------------------------------------------------------------------------------
def _global_attrs(forecast: xr.Dataset, config: VerifyConfig) -> dict:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Conventions": "CF-1.8",
        "title": "forecast verification scores",
        "history": f"{stamp} forecast verify --forecast {config.forecast} --truth {config.truth}",
        "source_forecast": str(config.forecast),
        "source_truth": str(config.truth),
        "grid": str(Grid.from_coords(forecast)),
        "ensemble_members": np.int32(forecast.sizes[MEMBER]),
        "init_times": ",".join(pd.DatetimeIndex(forecast["init_time"].values).strftime("%Y-%m-%dT%H:%M")),
        "config": json.dumps(config.model_dump(), sort_keys=True),
        "missing_values": "NaN where a score is undefined: spread, spread_skill and crps_fair of one-member "
                          "ensembles (the baselines, a one-member forecast); acc without a climatology; "
                          "lead times whose valid times have no truth",
        "comment": "categorical dims (model, metric, region, source) are stored as integer codes with CF "
                   "flag_meanings; forecast.verify.scores_file.open_scores decodes them to labels. Groups "
                   "rank_histogram and spectra hold rank histograms and power spectra.",
    }


def _write(config: VerifyConfig, scores: xr.Dataset, hists: xr.Dataset | None, spectra: xr.Dataset,
           init_sums: xr.Dataset, forecast: xr.Dataset, truth: xr.Dataset) -> Path:
    out = Path(config.out)
    units = {str(v): str(forecast[v].attrs.get("units", "1")) for v in forecast.data_vars}
    comment = "units of the variable for rmse, mae, bias, ens_rmse, ens_mae, spread, crps, crps_fair; squared for mse; " \
              "1 for acc and spread_skill"
    parts = {
        None: (scores, lambda v: {"long_name": f"verification scores of {forecast[v].attrs.get('long_name', v)}",
                                  "units": units[v], "comment": comment}),
        "rank_histogram": (hists, lambda v: {"long_name": f"rank histogram of {v} (area-weighted relative frequency)",
                                             "units": "1"}),
        "spectra": (spectra, lambda v: {"long_name": f"power spectrum of {v} (members and init times averaged)",
                                        "units": f"{squared_units(units[v])} sr"}),
        "init_sums": (init_sums, lambda v: {"long_name": f"area-weighted partial sums of the scores of {v} per init "
                                                         "time (value: sum of w x; weight: sum of w)", "units": "1",
                                            "members": init_sums.attrs["members"]}),
    }
    write_scores(out, parts, _global_attrs(forecast, config), str(config.forecast))
    log.info("scores written to %s", out)
    return out
