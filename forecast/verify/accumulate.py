r"""Scores as sums that can be added up chunk by chunk (out-of-core verification).

Every metric of :mod:`forecast.verify.registry` is a function of a few weighted sums
over (members,) init times and the sphere. :func:`lead_partials` computes those sums
for one lead time and one chunk of init times; :class:`Accumulator` adds the chunks;
:func:`finalise` turns the totals into the scores. Peak memory is one chunk of init
times (all members: the ensemble scores need every member at a point), whatever the
number of init times.

The sums reproduce :mod:`forecast.verify.deterministic` and
:mod:`forecast.verify.ensemble` exactly up to round-off: a weighted mean
:math:`\langle x \rangle_w` is the pair :math:`(\sum w x [x\ \mathrm{valid}],
\sum w [x\ \mathrm{valid}])`, the ACC (a mean of per-field correlations) is the pair
(sum of the valid ACCs, their number), and NaNs are left out as there.

Arrays have a leading ``variable`` dim (every variable of one lead time stacked), then
``member`` (the forecast only), ``init_time``, ``lat``, ``lon``; weights have dims
``(region, lat)``; every partial has dims ``(variable, init_time, region)``: the sums of each
init time are kept apart, so that the scores can be resampled over init times
(:mod:`forecast.verify.bootstrap`); :func:`over_inits` adds them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from forecast.verify import deterministic as det
from forecast.verify import ensemble as ens
from forecast.verify.registry import METRICS

__all__ = ["lead_partials", "over_inits", "Accumulator", "finalise", "rank_counts"]

MEMBER = "member"
SPACE = ("lat", "lon")
POOLED = (MEMBER, *SPACE)       # per init time: members and area
ENSEMBLE = SPACE                # per init time: area (the ensemble reduced first)

def _sums(x: xr.DataArray, weights: xr.DataArray, dims: tuple[str, ...]) -> tuple[xr.DataArray, xr.DataArray]:
    """``(sum w x, sum w)`` over ``dims``, NaNs and their weights left out."""
    w = weights.fillna(0.0)
    return xr.dot(x.fillna(0.0), w, dim=list(dims)), xr.dot(x.notnull().astype(w.dtype), w, dim=list(dims))


def lead_partials(forecast: xr.DataArray, truth: xr.DataArray, climatology: xr.DataArray | None,
                  weights: xr.DataArray, metrics: list[str]) -> dict[str, tuple[xr.DataArray, xr.DataArray]]:
    """The partial sums ``metrics`` need, for one lead time and one chunk of init times."""
    needed = {p for m in metrics for p in METRICS[m].partials}
    error = forecast - truth
    out: dict[str, tuple[xr.DataArray, xr.DataArray]] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        if "se" in needed:
            out["se"] = _sums(np.square(error), weights, POOLED)
        if "ae" in needed:
            out["ae"] = _sums(abs(error), weights, POOLED)
        if "e" in needed:
            out["e"] = _sums(error, weights, POOLED)
        if "acc" in needed and climatology is not None:
            value = det.acc(forecast, truth, climatology, weights, SPACE)     # one ACC per member and init time
            out["acc"] = (value.fillna(0.0).sum(MEMBER), value.notnull().sum(MEMBER))
        mean = forecast.mean(MEMBER, skipna=False)
        if "ens_se" in needed:
            out["ens_se"] = _sums(np.square(mean - truth), weights, ENSEMBLE)
        if "ens_ae" in needed:
            out["ens_ae"] = _sums(abs(mean - truth), weights, ENSEMBLE)
        m = forecast.sizes[MEMBER]
        if "var" in needed and m > 1:
            variance = forecast.var(MEMBER, ddof=1, skipna=False).where(truth.notnull())
            out["var"] = _sums(variance, weights, ENSEMBLE)
        if {"crps", "crps_fair"} & needed:
            skill = abs(error).mean(MEMBER, skipna=False)
            rank_weight = xr.DataArray(2.0 * np.arange(1, m + 1) - m - 1, dims=(MEMBER,))
            ordered = xr.apply_ufunc(np.sort, forecast, input_core_dims=[[MEMBER]], output_core_dims=[[MEMBER]],
                                     kwargs={"axis": -1})
            pair_sum = 2.0 * (ordered * rank_weight).sum(MEMBER, skipna=False)
            if "crps" in needed:
                out["crps"] = _sums(skill - pair_sum / (2.0 * m * m), weights, ENSEMBLE)
            if "crps_fair" in needed and m > 1:
                out["crps_fair"] = _sums(skill - pair_sum / (2.0 * m * (m - 1)), weights, ENSEMBLE)
    return out


def over_inits(partials: dict[str, tuple[xr.DataArray, xr.DataArray]]) -> dict[str, tuple[xr.DataArray, xr.DataArray]]:
    """The partial sums of :func:`lead_partials` added over ``init_time``."""
    return {name: (num.sum("init_time"), den.sum("init_time")) for name, (num, den) in partials.items()}


@dataclass
class Accumulator:
    """Adds the partial sums of successive chunks (one accumulator per model and lead time)."""

    totals: dict[str, tuple[xr.DataArray, xr.DataArray]] = field(default_factory=dict)

    def add(self, partials: dict[str, tuple[xr.DataArray, xr.DataArray]]) -> None:
        for name, (num, den) in partials.items():
            if name in self.totals:
                total_num, total_den = self.totals[name]
                self.totals[name] = (total_num + num, total_den + den)
            else:
                self.totals[name] = (num, den)


def finalise(acc: Accumulator, metrics: list[str], members: int, template: xr.DataArray) -> xr.DataArray:
    """Scores ``(metric, variable, region)`` from the totals; NaN where a metric is undefined
    (no valid point, no climatology for ``acc``, one member for ``spread``/``spread_skill``/``crps_fair``).

    ``template`` is any ``(variable, region)`` array (its values are not used).
    """
    nan = xr.full_like(template, np.nan, dtype=float)

    def mean(name: str) -> xr.DataArray:
        if name not in acc.totals:
            return nan
        num, den = acc.totals[name]
        return num / den.where(den > 0)

    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.sqrt((members + 1) / members * mean("var"))
        table = {
            "rmse": lambda: np.sqrt(mean("se")), "mse": lambda: mean("se"), "mae": lambda: mean("ae"),
            "bias": lambda: mean("e"), "acc": lambda: mean("acc"), "ens_rmse": lambda: np.sqrt(mean("ens_se")),
            "ens_mae": lambda: mean("ens_ae"), "spread": lambda: spread,
            "spread_skill": lambda: spread / np.sqrt(mean("ens_se")), "crps": lambda: mean("crps"),
            "crps_fair": lambda: mean("crps_fair"),
        }
        rows = [table[m]().transpose(*template.dims) for m in metrics]
    return xr.concat(rows, dim="metric", coords="minimal", compat="override", join="override").assign_coords(
        metric=list(metrics))


def rank_counts(forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray) -> xr.DataArray:
    """Area-weighted rank-histogram counts of one chunk, ``(variable, region, rank)`` (normalise the total)."""
    return ens.rank_histogram(forecast, truth, ("init_time", *SPACE), weights, normalise=False).transpose(..., "region", "rank")
