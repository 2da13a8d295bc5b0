"""``forecast plot``: every figure for a forecast and/or its scores, into one directory."""

from __future__ import annotations

import logging
from pathlib import Path

import xarray as xr

from forecast.config import PlotConfig
from forecast.plots.curves import plot_rank_histogram, plot_skill_curves, plot_spectra, plot_spread_skill
from forecast.plots.maps import plot_map
from forecast.plots.style import NoDataToPlot
from forecast.verify.scores_file import open_scores
from pipelines.errors import InputError
from pipelines.grids import Grid, standardise_latlon
from pipelines.outputs import check_output

log = logging.getLogger(__name__)

__all__ = ["plot_run"]

SKILL_METRICS = ("rmse", "acc", "crps", "bias")


def _variables(ds: xr.Dataset, wanted: str | None) -> list[str]:
    names = [str(v) for v in ds.data_vars]
    if wanted is None:
        return names
    if wanted not in names:
        raise InputError(f"variable {wanted!r} not found; available: {', '.join(names)}")
    return [wanted]


def _map_truth(forecast: xr.Dataset, truth_path: str | Path, config: PlotConfig) -> xr.Dataset:
    """The truth of the maps on the forecast's grid (lazy), after checking the request."""
    from forecast.verify.truth import truth_on_grid

    check_map_request(forecast, config)
    grid = Grid.from_coords(standardise_latlon(forecast))
    return truth_on_grid(truth_path, _variables(forecast, config.variable), grid, config.regrid_method)


def _maps(forecast: xr.Dataset, truth: xr.Dataset, out: Path, config: PlotConfig) -> list[Path]:
    paths = []
    for variable in _variables(forecast, config.variable):
        for hours in config.lead_times_hours:
            for fmt in config.formats:
                target = out / f"map_{variable}_lead{hours:g}h_member{config.member}.{fmt}"
                try:
                    paths.append(plot_map(forecast, truth, variable, hours, config.member, target, dpi=config.dpi))
                except NoDataToPlot as exc:  # no truth yet at that valid time
                    log.info("map skipped: %s", exc)
    return paths


def check_map_request(forecast: xr.Dataset, config: PlotConfig) -> None:
    """Refuse a member or lead time the forecast does not have, before drawing anything."""
    import numpy as np
    import pandas as pd

    members = forecast["member"].values
    if config.member not in members:
        raise InputError(f"--member {config.member} is not in the forecast; it has members "
                         f"{int(members.min())}..{int(members.max())}")
    hours = pd.TimedeltaIndex(forecast["lead_time"].values) / pd.Timedelta(hours=1)
    missing = [h for h in config.lead_times_hours if not np.isclose(hours, h).any()]
    if missing:
        raise InputError(f"--lead {','.join(f'{h:g}' for h in missing)} (hours) is not a lead time of the forecast; "
                         f"it has {', '.join(f'{h:g}' for h in hours)}")


def _skip_missing(draw, *args, **kwargs) -> list[Path]:
    """``[draw(...)]``, or ``[]`` with a log line when its data do not exist yet."""
    try:
        return [draw(*args, **kwargs)]
    except NoDataToPlot as exc:
        log.info("figure skipped: %s", exc)
        return []


def _score_figures(scores_path: str | Path, out: Path, config: PlotConfig) -> list[Path]:
    scores = open_scores(scores_path)
    spectra = open_scores(scores_path, "spectra")
    try:
        hists = open_scores(scores_path, "rank_histogram")
    except InputError:
        hists = None  # a one-member forecast has none
    paths = []
    for variable in _variables(scores, config.variable):
        for fmt in config.formats:
            for metric in SKILL_METRICS:
                if metric in scores["metric"].values and scores[variable].sel(metric=metric).notnull().any():
                    paths.append(plot_skill_curves(scores, variable, metric, out / f"skill_{metric}_{variable}.{fmt}",
                                                   dpi=config.dpi))
            if scores.attrs.get("ensemble_members", 1) > 1 and {"ens_rmse", "spread"} <= set(scores["metric"].values):
                paths.append(plot_spread_skill(scores, variable, out / f"spread_skill_{variable}.{fmt}", dpi=config.dpi))
            if hists is not None:
                paths += _skip_missing(plot_rank_histogram, hists, variable, out / f"rank_histogram_{variable}.{fmt}",
                                       dpi=config.dpi)
            paths += _skip_missing(plot_spectra, spectra, variable, out / f"spectra_{variable}.{fmt}", dpi=config.dpi)
    return paths


def plot_run(forecast: str | Path | None, truth: str | Path | None, scores: str | Path | None, out: str | Path,
             config: PlotConfig) -> list[Path]:
    """Maps (needs ``forecast`` and ``truth``, which is regridded onto the forecast's grid with
    ``config.regrid_method`` when it differs) and score figures (needs ``scores``); returns the
    files written.

    Raises
    ------
    InputError
        Before drawing anything: ``out`` is, contains or lies inside an input or under a
        file; ``forecast`` is not a forecast; maps without ``truth``; a member or lead time
        the forecast does not have.
    """
    from forecast.forecast_file import open_forecast

    out = check_output(out, {"--forecast": forecast, "--truth": truth, "--scores": scores}, "--out", "dir")
    forecast_ds = open_forecast(forecast) if forecast is not None else None
    if forecast_ds is not None and truth is None:
        raise InputError("maps need the truth too: pass --truth STORE with --forecast")
    truth_ds = _map_truth(forecast_ds, truth, config) if forecast_ds is not None and truth is not None else None
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    if forecast_ds is not None and truth_ds is not None:
        paths += _maps(forecast_ds, truth_ds, out, config)
    if scores is not None:
        paths += _score_figures(scores, out, config)
    return paths
