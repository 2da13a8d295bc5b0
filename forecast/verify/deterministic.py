r"""Area-weighted deterministic scores: MSE, RMSE, MAE, bias and the anomaly correlation.

Every function takes xarray objects (DataArray or Dataset, numpy- or dask-backed),
reduces over the dims the caller names and returns an object of the same kind with
those dims removed. Nothing is computed eagerly: on dask inputs the result is lazy.

Weights
-------
``weights`` is :meth:`pipelines.grids.Grid.area_weights` (dim ``lat``, mean 1), optionally
multiplied by a region mask (:mod:`forecast.verify.regions`). It broadcasts against
the data, so it may lack some of ``dims`` (e.g. ``init_time``, over which every sample
counts equally).

NaNs
----
A point where the forecast or the truth is NaN is left out: its weight is set to 0
too, so every score is a weighted mean over the valid points only,

.. math:: \langle x \rangle_w = \frac{\sum_i w_i x_i [x_i \ne \mathrm{NaN}]}{\sum_i w_i [x_i \ne \mathrm{NaN}]} ,

and a score with no valid point at all is NaN. This is what ``xarray``'s
``.weighted(w).mean(dims)`` and the ``scores`` package do.

References
----------
Rasp, S. et al. (2024): WeatherBench 2, J. Adv. Model. Earth Syst. 16, e2023MS004019
(definitions of RMSE, bias and ACC).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import math

import numpy as np
import xarray as xr

X = TypeVar("X", xr.DataArray, xr.Dataset)
Dims = Sequence[Hashable]

__all__ = ["weighted_mean", "mse", "rmse", "mae", "bias", "acc"]


def weighted_mean(x: X, weights: xr.DataArray, dims: Dims) -> X:
    r"""Weighted mean of ``x`` over ``dims``, leaving NaNs (and their weights) out.

    Parameters
    ----------
    x
        Values, any dims including ``dims``.
    weights
        Non-negative weights broadcastable to ``x`` (NaN weights count as 0). Extra
        dims of the weights that ``x`` lacks (e.g. ``region``, one mask per region) are
        kept: one mean per region in one pass.
    dims
        Dims to reduce.

    Returns
    -------
    :math:`\sum w x / \sum w` over the valid points; NaN where no point is valid.
    """
    if isinstance(x, xr.Dataset):
        return x.map(weighted_mean, weights=weights, dims=dims)
    dims = list(dims)
    w = weights.fillna(0.0)
    # einsum-style contractions: no (x * w) temporary, however many dims w adds
    if x.chunks is None and not np.isnan(x.data).any():
        # in-memory data without NaN (the common case): skip the mask and its contraction
        num = xr.dot(x, w, dim=dims)
        count = math.prod(x.sizes[d] for d in dims if d not in w.dims)
        den = w.sum([d for d in dims if d in w.dims]) * count
    else:
        num = xr.dot(x.fillna(0.0), w, dim=dims)
        den = xr.dot(x.notnull().astype(w.dtype), w, dim=dims)
    out = num / den.where(den > 0)
    out.attrs = dict(x.attrs)
    return out


def mse(forecast: X, truth: X, weights: xr.DataArray, dims: Dims) -> X:
    r"""Mean squared error :math:`\langle (f - t)^2 \rangle_w` (units of the variable squared)."""
    return weighted_mean(np.square(forecast - truth), weights, dims)


def rmse(forecast: X, truth: X, weights: xr.DataArray, dims: Dims) -> X:
    r"""Root mean squared error :math:`\sqrt{\langle (f - t)^2 \rangle_w}`.

    The square root is taken after averaging over all ``dims`` (time included when
    the caller passes it), as WeatherBench 2's ``RMSE``.
    """
    return mse(forecast, truth, weights, dims) ** 0.5   # np.sqrt, typed for xarray objects too


def mae(forecast: X, truth: X, weights: xr.DataArray, dims: Dims) -> X:
    r"""Mean absolute error :math:`\langle |f - t| \rangle_w`."""
    return weighted_mean(abs(forecast - truth), weights, dims)


def bias(forecast: X, truth: X, weights: xr.DataArray, dims: Dims) -> X:
    r"""Mean error :math:`\langle f - t \rangle_w` (positive: the forecast is too high)."""
    return weighted_mean(forecast - truth, weights, dims)


def acc(forecast: X, truth: X, climatology: X, weights: xr.DataArray, dims: Dims) -> X:
    r"""Uncentred anomaly correlation coefficient against a climatology.

    With anomalies :math:`f' = f - c` and :math:`t' = t - c` (``climatology`` at the
    valid time, broadcastable to the data),

    .. math:: \mathrm{ACC} = \frac{\langle f' t' \rangle_w}
              {\sqrt{\langle f'^2 \rangle_w \, \langle t'^2 \rangle_w}} \in [-1, 1],

    uncentred (the anomalies' own means are *not* removed), as WeatherBench 2. All
    three means run over the points where both ``f'`` and ``t'`` are valid. Pass only
    the spatial dims to get one ACC per time (WeatherBench 2 then averages the ACCs
    over time); passing ``init_time`` too pools the sums.
    """
    fa = forecast - climatology
    ta = truth - climatology
    both = fa.notnull() & ta.notnull()
    fa, ta = fa.where(both), ta.where(both)
    cov = weighted_mean(fa * ta, weights, dims)
    return cov / np.sqrt(weighted_mean(fa**2, weights, dims) * weighted_mean(ta**2, weights, dims))
