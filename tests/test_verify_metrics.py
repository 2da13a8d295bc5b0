"""Deterministic and ensemble metrics against independent implementations (scores, xskillscore, NumPy)."""

from __future__ import annotations

import contextlib

import dask
import numpy as np
import pytest
import scores
import xarray as xr
import xskillscore as xs

from forecast.verify import (acc, bias, crps_ensemble, ensemble_mean_mae, ensemble_mean_rmse, mae, mse, rank_histogram, region_weights,
                             rmse, spread, spread_skill_ratio, weighted_mean)
from pipelines.grids import Grid

GRIDS = [Grid("legendre-gauss", 8, 16), Grid("equiangular", 9, 16)]
SPACE = ("lat", "lon")
DIMS = ("init_time", "lat", "lon")


def make_pair(grid: Grid, members: int, nan_fraction: float = 0.0, seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    """Forecast (member, init_time, lead_time, lat, lon) and truth (init_time, lead_time, lat, lon), float64."""
    rng = np.random.default_rng(seed)
    coords = {"member": np.arange(members), "init_time": np.arange(3), "lead_time": np.arange(2), **grid.coords()}
    shape = (members, 3, 2, grid.nlat, grid.nlon)
    truth = xr.DataArray(rng.normal(size=shape[1:]), dims=list(coords)[1:],
                         coords={k: v for k, v in coords.items() if k != "member"}, name="x")
    fc = xr.DataArray(truth.values + 0.3 + rng.normal(scale=1.2, size=shape), dims=list(coords), coords=coords, name="x")
    if nan_fraction:
        truth = truth.where(rng.random(truth.shape) >= nan_fraction)
    return fc, truth


@contextlib.contextmanager
def raise_if_dask_computes():
    """Fail if anything inside the block computes a dask graph."""
    def refuse(dsk, keys, **kwargs):
        raise RuntimeError("a dask graph was computed where the code should stay lazy")
    with dask.config.set(scheduler=refuse):
        yield


def full_weights(grid: Grid, like: xr.DataArray) -> xr.DataArray:
    return grid.area_weights().broadcast_like(like).fillna(0.0)


@pytest.mark.parametrize("grid", GRIDS, ids=str)
@pytest.mark.parametrize("nan_fraction", [0.0, 0.2])
def test_deterministic_against_scores(grid: Grid, nan_fraction: float) -> None:
    fc, truth = make_pair(grid, 2, nan_fraction)
    w = grid.area_weights()
    dims = ("member", *DIMS)
    pairs = [(mse, scores.continuous.mse), (rmse, scores.continuous.rmse), (mae, scores.continuous.mae),
             (bias, scores.continuous.additive_bias)]
    for ours, theirs in pairs:
        expected = theirs(fc, truth, reduce_dims=list(dims), weights=full_weights(grid, fc))
        np.testing.assert_allclose(ours(fc, truth, w, dims), expected, rtol=1e-6, atol=1e-12, err_msg=ours.__name__)


def test_weighted_mean_masks_nan_weights_too() -> None:
    grid = GRIDS[0]
    x = xr.DataArray(np.ones(grid.shape), dims=SPACE, coords=grid.coords())
    x[0, :] = 100.0
    x[0, :3] = np.nan
    w = grid.area_weights()
    expected = float((x * w).sum() / (w * x.notnull()).sum())
    assert float(weighted_mean(x, w, SPACE)) == pytest.approx(expected, rel=1e-12)
    assert np.isnan(float(weighted_mean(x * np.nan, w, SPACE)))  # no valid point -> NaN, not 0


@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_acc_uncentred_formula_and_pearson(grid: Grid) -> None:
    fc, truth = make_pair(grid, 1, nan_fraction=0.1)
    fc, truth = fc.isel(member=0), truth
    clim = xr.DataArray(np.random.default_rng(3).normal(size=grid.shape), dims=SPACE, coords=grid.coords())
    ours = acc(fc, truth, clim, grid.area_weights(), SPACE)
    # independent NumPy evaluation of the uncentred formula
    w = np.broadcast_to(grid.area_weights().values[:, None], grid.shape)
    fa, ta = (fc - clim).values, (truth - clim).values
    for i in range(3):
        for j in range(2):
            ok = ~np.isnan(ta[i, j])
            f, t, ww = fa[i, j][ok], ta[i, j][ok], w[ok]
            expected = (ww * f * t).sum() / np.sqrt((ww * f * f).sum() * (ww * t * t).sum())
            assert float(ours[i, j]) == pytest.approx(expected, rel=1e-10)
    # with anomalies of zero weighted mean, the uncentred ACC is the weighted Pearson correlation
    wfull = full_weights(grid, truth.isel(init_time=0, lead_time=0))
    f0, t0 = (fc - clim).isel(init_time=0, lead_time=0), (truth - clim).isel(init_time=0, lead_time=0).fillna(0.0)
    f0 = f0 - (f0 * wfull).sum() / wfull.sum()
    t0 = t0 - (t0 * wfull).sum() / wfull.sum()
    pearson = xs.pearson_r(f0, t0, dim=list(SPACE), weights=wfull)
    np.testing.assert_allclose(acc(f0, t0, 0.0 * t0, grid.area_weights(), SPACE), pearson, rtol=1e-6)


@pytest.mark.parametrize("grid", GRIDS, ids=str)
@pytest.mark.parametrize("members", [1, 2, 3])
@pytest.mark.parametrize("nan_fraction", [0.0, 0.2])
def test_crps_against_scores(grid: Grid, members: int, nan_fraction: float) -> None:
    fc, truth = make_pair(grid, members, nan_fraction)
    w = full_weights(grid, truth)
    for fair, method in ((False, "ecdf"), (True, "fair")):
        ours = crps_ensemble(fc, truth, grid.area_weights(), DIMS, fair=fair)
        if fair and members == 1:
            assert np.isnan(ours).all() and "one-member" in ours.attrs["note"]
            continue
        expected = scores.probability.crps_for_ensemble(fc, truth, "member", method=method, reduce_dims=list(DIMS),
                                                        weights=w)
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-12)
    if members == 1:  # a one-member ensemble's CRPS is its MAE
        np.testing.assert_allclose(crps_ensemble(fc, truth, grid.area_weights(), DIMS),
                                   mae(fc.isel(member=0), truth, grid.area_weights(), DIMS), rtol=1e-12)


@pytest.mark.parametrize("grid", GRIDS, ids=str)
@pytest.mark.parametrize("members", [1, 2, 3])
def test_ensemble_mean_rmse_spread_and_ratio(grid: Grid, members: int) -> None:
    fc, truth = make_pair(grid, members, nan_fraction=0.2)
    w = grid.area_weights()
    expected_rmse = scores.continuous.rmse(fc.mean("member"), truth, reduce_dims=list(DIMS), weights=full_weights(grid, truth))
    skill = ensemble_mean_rmse(fc, truth, w, DIMS)
    np.testing.assert_allclose(skill, expected_rmse, rtol=1e-6)
    expected_mae = scores.continuous.mae(fc.mean("member"), truth, reduce_dims=list(DIMS), weights=full_weights(grid, truth))
    np.testing.assert_allclose(ensemble_mean_mae(fc, truth, w, DIMS), expected_mae, rtol=1e-6)
    sp = spread(fc, w, DIMS, truth=truth)
    ratio = spread_skill_ratio(fc, truth, w, DIMS)
    if members == 1:
        assert np.isnan(sp).all() and np.isnan(ratio).all() and "one-member" in sp.attrs["note"]
        return
    # NumPy: sqrt((M+1)/M * weighted mean of the unbiased member variance), NaN truth points left out
    var = fc.values.var(axis=0, ddof=1)
    wfull = np.broadcast_to(w.values[:, None], var.shape[-2:])
    ok = ~np.isnan(truth.values)
    for j in range(2):
        okj = ok[:, j]
        mean_var = (var[:, j] * wfull)[okj].sum() / np.broadcast_to(wfull, okj.shape)[okj].sum()
        expected = np.sqrt((members + 1) / members * mean_var)
        assert float(sp[j]) == pytest.approx(expected, rel=1e-10)
        assert float(ratio[j]) == pytest.approx(expected / float(expected_rmse[j]), rel=1e-6)


@pytest.mark.parametrize("grid", GRIDS, ids=str)
@pytest.mark.parametrize("members", [1, 2, 3])
def test_rank_histogram_against_xskillscore(grid: Grid, members: int) -> None:
    fc, truth = make_pair(grid, members)
    ours = rank_histogram(fc, truth, DIMS)
    theirs = xs.rank_histogram(truth, fc, dim=list(DIMS), member_dim="member", random_for_tied=False)
    assert ours.sizes["rank"] == members + 1
    np.testing.assert_allclose(ours.transpose(*theirs.dims), theirs, rtol=1e-12)
    weighted = rank_histogram(fc, truth, DIMS, weights=grid.area_weights(), normalise=True)
    np.testing.assert_allclose(weighted.sum("rank"), 1.0, rtol=1e-12)


def test_rank_histogram_leaves_nan_points_out() -> None:
    grid = GRIDS[0]
    fc, truth = make_pair(grid, 2, nan_fraction=0.3)
    ours = rank_histogram(fc, truth, DIMS)
    ok = truth.notnull()
    np.testing.assert_allclose(ours.sum("rank"), ok.sum(DIMS))
    theirs = xs.rank_histogram(truth.fillna(1e9).where(ok, 1e9), fc.where(ok, 1e9 + 1), dim=list(DIMS),
                               member_dim="member", random_for_tied=False)
    # the 1e9 points all fall in rank 1 (xskillscore) / 0 (ours): remove them
    theirs = theirs - xr.where(theirs["rank"] == 1, (~ok).sum(DIMS), 0)
    np.testing.assert_allclose(ours.transpose(*theirs.dims), theirs)


def test_region_weights_mask_latitudes() -> None:
    grid = Grid("equiangular", 19, 16)
    w = region_weights(grid.area_weights(), "tropics")
    assert (w.where(abs(w["lat"]) > 20, 0.0) == 0).all() and (w.sel(lat=0.0) > 0)


def test_metrics_stay_lazy_on_dask() -> None:
    grid = GRIDS[0]
    fc, truth = make_pair(grid, 3, nan_fraction=0.1)
    fc, truth = fc.chunk({"init_time": 1, "member": 1}), truth.chunk({"init_time": 1})
    w = grid.area_weights()
    with raise_if_dask_computes():
        out = [rmse(fc, truth, w, ("member", *DIMS)), acc(fc, truth, 0.1, w, SPACE),
               crps_ensemble(fc, truth, w, DIMS, fair=True), spread_skill_ratio(fc, truth, w, DIMS),
               rank_histogram(fc, truth, DIMS, weights=w)]
    assert all(o.chunks is not None for o in out)
    np.testing.assert_allclose(out[2].compute(), crps_ensemble(fc.compute(), truth.compute(), w, DIMS, fair=True))


def test_a_nan_member_leaves_its_point_out_of_every_ensemble_score() -> None:
    grid = GRIDS[0]
    fc, truth = make_pair(grid, 3)
    holed = fc.copy()
    holed[1, 0, 0, 2, 5] = np.nan  # one member missing at one point
    keep = truth.where(holed.notnull().all("member"))
    w = grid.area_weights()
    for fn in (ensemble_mean_rmse, spread_skill_ratio, lambda f, t, w, d: crps_ensemble(f, t, w, d, fair=True)):
        np.testing.assert_allclose(fn(holed, truth, w, DIMS), fn(fc, keep, w, DIMS), rtol=1e-12)
    np.testing.assert_allclose(rank_histogram(holed, truth, DIMS), rank_histogram(fc, keep, DIMS))
