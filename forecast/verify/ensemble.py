r"""Ensemble scores: ensemble-mean RMSE, spread, spread/skill ratio, CRPS, rank histogram.

Same conventions as :mod:`forecast.verify.deterministic`: xarray in, xarray out,
reduction over the dims the caller names, weights from
:meth:`pipelines.grids.Grid.area_weights`, NaNs (and their weights) left out, lazy on
dask. The ensemble dim is ``member_dim`` (``"member"``) with :math:`M` members; it must
hold the whole ensemble in one dask chunk for the sorting in :func:`crps_ensemble`
(the functions rechunk it when needed).

A point where the truth or *any* member is NaN is left out of the ensemble scores.

Ensembles of one member
-----------------------
:func:`spread`, :func:`spread_skill_ratio` and the fair CRPS need :math:`M \ge 2`; with
:math:`M = 1` they return NaN (the unbiased ensemble variance has no degree of freedom
and the fair CRPS divides by :math:`M - 1`) and the result's ``attrs["note"]`` says so.
The standard CRPS of a one-member ensemble is its mean absolute error.

References
----------
Fortin, V. et al. (2014): Why should ensemble spread match the RMSE of the ensemble
mean? J. Hydrometeor. 15, 1708-1713.
Ferro, C. A. T. (2014): Fair scores for ensemble forecasts. Q. J. R. Meteorol. Soc.
140, 1917-1923.
Hamill, T. M. (2001): Interpretation of rank histograms for verifying ensemble
forecasts. Mon. Wea. Rev. 129, 550-560.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from forecast.verify.deterministic import Dims, X, mae, rmse, weighted_mean

__all__ = ["ensemble_mean_rmse", "ensemble_mean_mae", "spread", "spread_skill_ratio", "crps_ensemble", "rank_histogram"]

_M1_NOTE = "undefined for a one-member ensemble (needs at least 2 members); set to NaN"


def _ensemble_size(forecast: X, member_dim: str) -> int:
    if member_dim not in forecast.dims:
        raise ValueError(f"forecast has no ensemble dim {member_dim!r}; its dims are {tuple(forecast.dims)}")
    return int(forecast.sizes[member_dim])


def _mask_incomplete(forecast: X, truth: X, member_dim: str) -> tuple[X, X]:
    """NaN wherever the truth or any member is NaN (so members and truth share one mask)."""
    ok = forecast.notnull().all(member_dim) & truth.notnull()
    return forecast.where(ok), truth.where(ok)


def _undefined(template: X, note: str) -> X:
    out = xr.full_like(template, np.nan, dtype=float)
    items = out.data_vars.values() if isinstance(out, xr.Dataset) else [out]
    for item in items:
        item.attrs["note"] = note
    out.attrs["note"] = note
    return out


def ensemble_mean_rmse(forecast: X, truth: X, weights: xr.DataArray, dims: Dims, member_dim: str = "member") -> X:
    r"""RMSE of the ensemble mean :math:`\bar f = \frac1M \sum_i f_i`:
    :math:`\sqrt{\langle (\bar f - t)^2 \rangle_w}` (units of the variable)."""
    _ensemble_size(forecast, member_dim)
    # a NaN member makes the mean NaN (skipna=False), so that point is left out
    return rmse(forecast.mean(member_dim, skipna=False), truth, weights, dims)


def ensemble_mean_mae(forecast: X, truth: X, weights: xr.DataArray, dims: Dims, member_dim: str = "member") -> X:
    r"""MAE of the ensemble mean, :math:`\langle |\bar f - t| \rangle_w` (units of the variable).

    The yardstick for the CRPS: the CRPS of a one-member forecast is its MAE, so a
    useful ensemble has a CRPS well below the MAE of its own mean.
    """
    _ensemble_size(forecast, member_dim)
    return mae(forecast.mean(member_dim, skipna=False), truth, weights, dims)


def spread(forecast: X, weights: xr.DataArray, dims: Dims, member_dim: str = "member", truth: X | None = None) -> X:
    r"""Ensemble spread with the finite-ensemble correction (units of the variable).

    .. math:: \mathrm{spread} = \sqrt{\frac{M+1}{M} \, \langle s^2 \rangle_w}, \qquad
              s^2 = \frac{1}{M-1} \sum_{i=1}^M (f_i - \bar f)^2 ,

    so that a statistically consistent ensemble has spread equal to the RMSE of its
    mean (Fortin et al. 2014): the two curves of a spread-skill plot are directly
    comparable. ``truth``, when given, only masks the points where it is NaN (so spread
    and skill use the same points). NaN for :math:`M = 1`.
    """
    m = _ensemble_size(forecast, member_dim)
    if m < 2:
        return _undefined(weighted_mean(forecast.isel({member_dim: 0}), weights, dims), "spread " + _M1_NOTE)
    variance = forecast.var(member_dim, ddof=1, skipna=False)  # NaN where any member is NaN
    if truth is not None:
        variance = variance.where(truth.notnull())
    return np.sqrt((m + 1) / m * weighted_mean(variance, weights, dims))


def spread_skill_ratio(forecast: X, truth: X, weights: xr.DataArray, dims: Dims, member_dim: str = "member") -> X:
    r"""Spread/skill ratio :math:`\sqrt{\frac{M+1}{M} \langle s^2 \rangle_w} /
    \sqrt{\langle (\bar f - t)^2 \rangle_w}` (1: consistent; < 1: under-dispersive).

    The numerator is :func:`spread` (with the :math:`(M+1)/M` correction), the
    denominator :func:`ensemble_mean_rmse`, both over the same points. NaN for :math:`M = 1`.
    """
    return spread(forecast, weights, dims, member_dim, truth=truth) / ensemble_mean_rmse(
        forecast, truth, weights, dims, member_dim)


def _sorted_members(forecast: X, member_dim: str) -> X:
    """Members sorted in increasing order along ``member_dim`` (NaNs last), lazily."""
    def _sort(da: xr.DataArray) -> xr.DataArray:
        if da.chunks is not None:
            da = da.chunk({member_dim: -1})
        return xr.apply_ufunc(np.sort, da, input_core_dims=[[member_dim]], output_core_dims=[[member_dim]],
                              kwargs={"axis": -1}, dask="parallelized", output_dtypes=[da.dtype])
    if isinstance(forecast, xr.Dataset):
        return forecast.map(_sort)
    return _sort(forecast)


def crps_ensemble(forecast: X, truth: X, weights: xr.DataArray, dims: Dims, member_dim: str = "member",
                  fair: bool = False) -> X:
    r"""Continuous ranked probability score of an ensemble (units of the variable).

    Standard ("ecdf", the CRPS of the ensemble's empirical distribution) and fair
    (Ferro 2014, unbiased for the CRPS of the distribution the members are drawn from):

    .. math:: \mathrm{CRPS} = \frac1M \sum_i |f_i - t| - \frac{1}{2 M^2} \sum_{i,j} |f_i - f_j| ,
    .. math:: \mathrm{CRPS_{fair}} = \frac1M \sum_i |f_i - t| - \frac{1}{2 M (M-1)} \sum_{i,j} |f_i - f_j| ,

    averaged with weights over ``dims``. The pair sum is computed in
    :math:`O(M \log M)` from the sorted members :math:`f_{(1)} \le \dots \le f_{(M)}`:
    :math:`\sum_{i,j} |f_i - f_j| = 2 \sum_k (2k - M - 1) f_{(k)}`. With :math:`M = 1`
    the standard CRPS is the MAE and the fair CRPS is NaN.
    """
    m = _ensemble_size(forecast, member_dim)
    # NaN in the truth or any member makes both terms NaN there (skipna=False): left out
    skill = abs(forecast - truth).mean(member_dim, skipna=False)
    if fair and m < 2:
        return _undefined(weighted_mean(skill, weights, dims), "fair CRPS " + _M1_NOTE)
    rank_weight = xr.DataArray(2.0 * np.arange(1, m + 1) - m - 1, dims=(member_dim,))
    pair_sum = 2.0 * (_sorted_members(forecast, member_dim) * rank_weight).sum(member_dim, skipna=False)
    norm = 2.0 * m * (m - 1) if fair else 2.0 * m * m
    return weighted_mean(skill - pair_sum / norm, weights, dims)


def rank_histogram(forecast: X, truth: X, dims: Dims, weights: xr.DataArray | None = None,
                   member_dim: str = "member", normalise: bool = False) -> X:
    r"""Histogram of the rank of the truth among the members (Hamill 2001).

    The rank of the truth is the number of members strictly below it,
    :math:`r = \#\{i : f_i < t\} \in \{0, \dots, M\}` (dim ``rank``, size :math:`M+1`);
    ties are not randomised, so use it on continuous variables. Each point adds its
    weight (1 when ``weights`` is None, giving counts as ``xskillscore.rank_histogram``,
    whose ranks are ours + 1) to its rank's bin; points with any NaN are left out.
    With ``normalise`` the bins sum to 1 (relative frequency; flat is :math:`1/(M+1)`).
    """
    m = _ensemble_size(forecast, member_dim)
    forecast, truth = _mask_incomplete(forecast, truth, member_dim)
    rank = (forecast < truth).sum(member_dim).where(truth.notnull(), -1)
    onehot = xr.concat([rank == k for k in range(m + 1)], dim="rank").assign_coords(rank=np.arange(m + 1))
    if weights is None:
        hist = onehot.sum(list(dims)).astype(float)
    else:
        w = weights.fillna(0.0)
        hist = (onehot.map(lambda b: xr.dot(b.astype(w.dtype), w, dim=list(dims))) if isinstance(onehot, xr.Dataset)
                else xr.dot(onehot.astype(w.dtype), w, dim=list(dims)))
    if normalise:
        hist = hist / hist.sum("rank")
    return hist
