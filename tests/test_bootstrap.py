"""Bootstrap intervals over init times, against a direct resampling of the forecast."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from forecast.config import VerifyConfig
from forecast.verify import ensemble as ens
from forecast.verify.bootstrap import interval, open_init_sums, ratio_interval, resample_counts, resampled_scores
from forecast.verify.workflow import verify
from verify_factories import GRID, make_forecast, make_store

INITS = [0, 2, 4, 6, 8]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("boot")
    truth = make_store(root / "store.zarr")
    forecast = make_forecast(root / "fc.nc", truth, members=4, inits=INITS, leads=3)
    out = verify(VerifyConfig(forecast=str(root / "fc.nc"), truth=str(root / "store.zarr"), regions=["global"],
                              out=str(root / "scores.nc")))
    return out, truth, forecast


def _direct(forecast: xr.Dataset, truth: xr.Dataset, picks: np.ndarray, metric: str, lead: int) -> float:
    """The score of the forecast whose init times are ``picks`` (repeats allowed), computed from the fields."""
    fc = forecast["gh"].isel(init_time=picks, lead_time=lead)
    valid = fc["valid_time"].values
    obs = truth["gh"].sel(time=valid).rename(time="init_time").assign_coords(init_time=fc["init_time"].values)
    fc = fc.drop_vars("valid_time").astype(float)
    weights = GRID.area_weights()
    dims = ("init_time", "lat", "lon")
    functions = {"crps": lambda: ens.crps_ensemble(fc, obs, weights, dims),
                 "ens_rmse": lambda: ens.ensemble_mean_rmse(fc, obs, weights, dims),
                 "spread_skill": lambda: ens.spread_skill_ratio(fc, obs, weights, dims)}
    return float(functions[metric]())


@pytest.mark.parametrize("metric", ["crps", "ens_rmse", "spread_skill"])
def test_resampled_scores_equal_scores_of_the_resampled_forecast(scored, metric):
    out, truth, forecast = scored
    sums, members = open_init_sums(out)
    one = sums["gh"].sel(model="forecast", region="global", drop=True)
    counts = resample_counts(len(INITS), 6, seed=3)
    values = resampled_scores(one, metric, members["forecast"], counts)
    plain = resampled_scores(one, metric, members["forecast"], None)
    for r in range(6):
        picks = np.repeat(np.arange(len(INITS)), counts.isel(resample=r).values.astype(int))
        assert float(values.isel(resample=r, lead_time=2)) == pytest.approx(_direct(forecast, truth, picks, metric, 2),
                                                                              rel=1e-9)
    assert float(plain.isel(lead_time=2)) == pytest.approx(_direct(forecast, truth, np.arange(len(INITS)), metric, 2),
                                                           rel=1e-9)


def test_interval_is_the_quantiles_of_the_direct_resamples(scored):
    out, truth, forecast = scored
    sums, members = open_init_sums(out)
    sums = sums.sel(region="global")
    got = interval(sums, members, "gh", "crps", level=0.8, n_resamples=40, seed=7)
    counts = resample_counts(len(INITS), 40, seed=7)
    direct = [_direct(forecast, truth, np.repeat(np.arange(len(INITS)), c.astype(int)), "crps", 1)
              for c in counts.values]
    low, high = np.quantile(direct, [0.1, 0.9])
    assert float(got["low"].isel(lead_time=1)) == pytest.approx(low, rel=1e-9)
    assert float(got["high"].isel(lead_time=1)) == pytest.approx(high, rel=1e-9)
    assert float(got["low"].isel(lead_time=1)) < float(got["value"].isel(lead_time=1)) < \
        float(got["high"].isel(lead_time=1))


def test_a_ratio_of_a_model_to_itself_is_exactly_one(scored):
    out, _, _ = scored
    sums, members = open_init_sums(out)
    ratio = ratio_interval(sums.sel(region="global"), members, "gh", "ens_rmse", "forecast", "forecast")
    np.testing.assert_allclose(ratio["low"].isel(lead_time=slice(1, None)), 1.0)
    np.testing.assert_allclose(ratio["high"].isel(lead_time=slice(1, None)), 1.0)


def test_resample_counts_draw_every_init_time_n_times_in_all():
    counts = resample_counts(7, 500, seed=0)
    assert counts.shape == (500, 7) and bool((counts.sum("init_time") == 7).all())
    assert abs(float(counts.mean()) - 1.0) < 0.05

