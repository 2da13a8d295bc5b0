r"""Bootstrap intervals over init times for scores and ratios of scores.

A score over :math:`N` init times is a function of sums over them (:mod:`forecast.verify.accumulate`),
e.g. the ensemble-mean RMSE :math:`\sqrt{\sum_i s_i / \sum_i w_i}` or the spread/skill ratio.
Forecasts from init times a few days apart are close to independent, the grid points of one
forecast are not, so the sampling uncertainty of a score is estimated by resampling init
times: draw :math:`N` of them with replacement (:math:`R` times), recompute the score from
the resampled sums, and take the :math:`(1 \mp \gamma)/2` quantiles (percentile bootstrap,
Efron & Tibshirani 1993, ch. 13). A ratio of two systems' scores (a forecast over the
perfect model) resamples both with the same init times (a paired bootstrap), so what they
share cancels.

The resampled sums are exact: a resample is a vector of counts :math:`c_{ri}` (how often init
time :math:`i` was drawn), and its sums are :math:`\sum_i c_{ri}\, s_i`; the scores are then
computed by :func:`forecast.verify.accumulate.finalise`, the function that computes the
scores themselves.

Reference: Efron, B. and Tibshirani, R. J. (1993), *An Introduction to the Bootstrap*,
Chapman & Hall.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from forecast.verify.accumulate import Accumulator, finalise
from forecast.verify.scores_file import open_scores
from pipelines.errors import InputError

__all__ = ["resample_counts", "resampled_scores", "interval", "ratio_interval", "open_init_sums"]

RESAMPLE = "resample"


def resample_counts(n_inits: int, n_resamples: int = 2000, seed: int = 0) -> xr.DataArray:
    """``(resample, init_time)`` counts: how often each of ``n_inits`` init times is drawn in each
    resample of ``n_inits`` draws with replacement."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_inits, size=(n_resamples, n_inits))
    counts = np.stack([np.bincount(row, minlength=n_inits) for row in draws]).astype(np.float64)
    return xr.DataArray(counts, dims=(RESAMPLE, "init_time"))


def open_init_sums(scores: str | Path) -> tuple[xr.Dataset, dict[str, int]]:
    """The per-init sums of a scores file (group ``init_sums``) and each model's ensemble size."""
    sums = open_scores(scores, group="init_sums")
    first = next(iter(sums.data_vars.values()))
    return sums, {str(k): int(v) for k, v in json.loads(first.attrs["members"]).items()}


def resampled_scores(sums: xr.DataArray, metric: str, members: int, counts: xr.DataArray | None) -> xr.DataArray:
    """``metric`` of one model from its per-init sums ``(part, sum, ..., init_time, ...)``, for
    every resample of ``counts`` (None: the plain score over all init times)."""
    weights = xr.ones_like(sums["init_time"], dtype=float) if counts is None else counts.assign_coords(
        init_time=sums["init_time"].values)
    totals = xr.dot(sums.fillna(0.0), weights, dim="init_time")
    acc = Accumulator({str(p): (totals.sel(part=p, sum="value", drop=True), totals.sel(part=p, sum="weight", drop=True))
                       for p in sums["part"].values if bool(sums.sel(part=p).notnull().any())})
    template = totals.isel(part=0, sum=0, drop=True)
    return finalise(acc, [metric], members, template).squeeze("metric", drop=True)


def _quantiles(values: xr.DataArray, level: float) -> xr.DataArray:
    if not 0.0 < level < 1.0:
        raise InputError(f"bootstrap level must be in (0, 1), got {level}")
    q = [(1.0 - level) / 2.0, (1.0 + level) / 2.0]
    return values.quantile(q, dim=RESAMPLE).assign_coords(quantile=["low", "high"]).rename(quantile="bound")


def interval(sums: xr.Dataset, members: dict[str, int], variable: str, metric: str, model: str = "forecast",
             level: float = 0.9, n_resamples: int = 2000, seed: int = 0) -> xr.Dataset:
    """``metric`` of ``model`` and its ``level`` bootstrap interval: Dataset with ``value`` and
    ``low``/``high`` (dims of the scores, e.g. ``lead_time, region``)."""
    one = sums[variable].sel(model=model, drop=True)
    counts = resample_counts(one.sizes["init_time"], n_resamples, seed)
    value = resampled_scores(one, metric, members[model], None)
    bounds = _quantiles(resampled_scores(one, metric, members[model], counts), level)
    return xr.Dataset({"value": value, "low": bounds.sel(bound="low", drop=True),
                       "high": bounds.sel(bound="high", drop=True)})


def ratio_interval(sums: xr.Dataset, members: dict[str, int], variable: str, metric: str, model: str,
                   reference: str, level: float = 0.9, n_resamples: int = 2000, seed: int = 0) -> xr.Dataset:
    """``metric(model) / metric(reference)`` and its paired ``level`` bootstrap interval (the
    same resampled init times for both)."""
    counts = resample_counts(sums.sizes["init_time"], n_resamples, seed)

    def score(name: str, c: xr.DataArray | None) -> xr.DataArray:
        return resampled_scores(sums[variable].sel(model=name, drop=True), metric, members[name], c)

    value = score(model, None) / score(reference, None)
    bounds = _quantiles(score(model, counts) / score(reference, counts), level)
    return xr.Dataset({"value": value, "low": bounds.sel(bound="low", drop=True),
                       "high": bounds.sel(bound="high", drop=True)})
