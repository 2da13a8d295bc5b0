"""``forecast verify`` end to end on a tiny store and forecast written to disk."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cf_check import cf_failures
from verify_factories import (GRID, VARIABLES, make_climatology, make_forecast, make_regridded_forecast, make_store,
                             make_truth)

from forecast.config import VerifyConfig, validate_config
from forecast.verify import climatology_at, persistence, rmse
from forecast.verify.workflow import open_scores, verify
from pipelines.errors import InputError
from pipelines.grids import Grid

@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, xr.Dataset, xr.Dataset]:
    tmp = tmp_path_factory.mktemp("verify")
    truth = make_store(tmp / "store.zarr")
    forecast = make_forecast(tmp / "fc.nc", truth, members=3, inits=[0, 4], leads=5)
    out = verify(VerifyConfig(forecast=str(tmp / "fc.nc"), truth=str(tmp / "store.zarr"), out=str(tmp / "scores.nc")))
    return out, truth, forecast


def test_scores_layout(scored: tuple[Path, xr.Dataset, xr.Dataset]) -> None:
    out, _, _ = scored
    ds = open_scores(out)
    assert set(ds.data_vars) == set(VARIABLES)
    assert ds["gh"].dims == ("model", "metric", "lead_time", "region")
    assert list(ds["model"].values) == ["forecast", "persistence", "climatology"]
    assert list(ds["region"].values) == ["global", "nh-extratropics", "tropics", "sh-extratropics"]
    assert list(ds["metric"].values) == VerifyConfig().metrics
    assert ds["lead_time"].dtype.kind == "m" and ds["lead_time"].values[1] == np.timedelta64(6, "h")
    assert ds.attrs["Conventions"] == "CF-1.8" and "forecast verify" in ds.attrs["history"]
    assert ds["gh"].attrs["units"] == "m"
    with netCDF4.Dataset(out) as raw:  # CF/CDO-friendly encoding on disk
        lead = raw["lead_time"]
        assert lead.units == "hours" and lead.dtype == np.float64 and "_FillValue" not in lead.ncattrs()
        assert raw["model"].dtype == np.int32 and raw["model"].flag_meanings == "forecast persistence climatology"
        assert raw["gh"].dimensions[0] == "lead_time" and set(raw.groups) == {"rank_histogram", "spectra", "init_sums"}
        assert raw.Conventions == "CF-1.8" and isinstance(raw.ensemble_members, np.int32)
    hist = open_scores(out, "rank_histogram")
    assert hist["gh"].dims == ("lead_time", "region", "rank") and hist.sizes["rank"] == 4
    np.testing.assert_allclose(hist["gh"].isel(lead_time=slice(1, None)).sum("rank"), 1.0, rtol=1e-9)
    spectra = open_scores(out, "spectra")
    assert spectra["u"].dims == ("source", "lead_time", "wavenumber")


def test_scores_values(scored: tuple[Path, xr.Dataset, xr.Dataset]) -> None:
    out, truth, forecast = scored
    ds = open_scores(out)
    gh = ds["gh"].sel(region="global")
    w = GRID.area_weights()
    # lead 0 of this forecast is the truth; persistence at lead 0 is the truth as well
    np.testing.assert_allclose(gh.sel(model=["forecast", "persistence"], metric=["rmse", "mae", "crps"]).isel(lead_time=0),
                               0.0, atol=1e-5)
    # RMSE grows with the noise; an independent recomputation of one entry
    valid = forecast["valid_time"].isel(lead_time=3).values
    t = truth["gh"].sel(time=valid).rename(time="init_time").assign_coords(init_time=forecast["init_time"].values)
    expected = rmse(forecast["gh"].isel(lead_time=3).astype(float), t.astype(float), w, ("member", "init_time", "lat", "lon"))
    assert float(gh.sel(model="forecast", metric="rmse").isel(lead_time=3)) == pytest.approx(float(expected), rel=1e-6)
    pers = persistence(truth[["gh"]], forecast["init_time"].values, forecast["lead_time"].values)["gh"].isel(lead_time=3)
    expected = rmse(pers.astype(float), t.astype(float), w, ("init_time", "lat", "lon"))
    assert float(gh.sel(model="persistence", metric="rmse").isel(lead_time=3)) == pytest.approx(float(expected), rel=1e-6)
    # baselines are one-member ensembles: CRPS = MAE, ens_rmse = rmse, spread undefined
    base = gh.sel(model=["persistence", "climatology"])
    np.testing.assert_allclose(base.sel(metric="crps"), base.sel(metric="mae"), rtol=1e-9)
    np.testing.assert_allclose(base.sel(metric="ens_rmse"), base.sel(metric="rmse"), rtol=1e-9)
    np.testing.assert_allclose(base.sel(metric="ens_mae"), base.sel(metric="mae"), rtol=1e-9)
    assert np.isnan(base.sel(metric=["spread", "spread_skill", "crps_fair"])).all()
    fc = gh.sel(model="forecast").isel(lead_time=slice(1, None))
    assert (fc.sel(metric="ens_rmse") < fc.sel(metric="rmse")).all()
    assert np.isfinite(fc.sel(metric=["spread", "spread_skill", "crps_fair", "acc"])).all()


def test_climatology_lookup_uses_day_and_hour() -> None:
    clim = make_climatology(make_truth())
    times = pd.DatetimeIndex(["2020-02-01T06:00", "2020-12-31T23:00"])
    out = climatology_at(clim, times)
    np.testing.assert_allclose(out["gh"].isel(time=0) - clim["gh"].isel(dayofyear=0, hour=0), 0.31 + 0.6, rtol=1e-5)
    # day 366 of a leap year; 23h takes the nearest climatological hour, 18h (no wrap to the next day)
    np.testing.assert_allclose(out["gh"].isel(time=1) - clim["gh"].isel(dayofyear=0, hour=0), 3.65 + 1.8, rtol=1e-5)


def test_single_member_forecast_and_missing_truth(tmp_path: Path) -> None:
    truth = make_store(tmp_path / "store.zarr")
    make_forecast(tmp_path / "fc.nc", truth, members=1, inits=[12], leads=6)  # last 2 leads beyond the truth
    out = verify(VerifyConfig(forecast=str(tmp_path / "fc.nc"), truth=str(tmp_path / "store.zarr"),
                              baselines=["persistence"], out=str(tmp_path / "s.nc")))
    ds = open_scores(out)
    assert list(ds["model"].values) == ["forecast", "persistence"]
    fc = ds["u"].sel(model="forecast", region="global")
    assert np.isnan(fc.sel(metric=["spread", "spread_skill", "crps_fair"])).all()
    assert np.isfinite(fc.sel(metric="rmse").isel(lead_time=slice(0, 4))).all()
    assert np.isnan(fc.sel(metric="rmse").isel(lead_time=slice(4, None))).all()
    with pytest.raises(InputError, match="rank_histogram"):
        open_scores(out, "rank_histogram")  # not written for one member


def test_bad_inputs(tmp_path: Path) -> None:
    truth = make_store(tmp_path / "store.zarr", climatology=False)
    make_forecast(tmp_path / "fc.nc", truth, members=2, inits=[0], leads=2)
    base = {"forecast": str(tmp_path / "fc.nc"), "truth": str(tmp_path / "store.zarr"), "out": str(tmp_path / "s.nc")}
    with pytest.raises(InputError, match="needs a climatology"):
        verify(VerifyConfig(**base))
    with pytest.raises(InputError, match="does not exist"):
        verify(VerifyConfig(**{**base, "forecast": str(tmp_path / "nope.nc")}))
    with pytest.raises(InputError, match="regions.0"):   # refused when the config is loaded
        validate_config(VerifyConfig, {**base, "regions": ["arctic"]})
    other = Grid("equiangular", 9, 16)
    make_store(tmp_path / "other.zarr", grid=other)
    with pytest.raises(InputError, match="truth's grid equiangular:9x16 differs from the forecast grid"):
        verify(VerifyConfig(**{**base, "truth": str(tmp_path / "other.zarr"), "regrid_method": None}))
    assert not (tmp_path / "s.nc").exists()


def test_truth_as_era5_convention_files(tmp_path: Path) -> None:
    truth = make_truth()
    era5 = truth.rename(time="valid_time", lat="latitude", lon="longitude").isel(latitude=slice(None, None, -1))
    era5.attrs = {}
    era5.to_netcdf(tmp_path / "era5.nc")
    make_forecast(tmp_path / "fc.nc", truth, members=2, inits=[0], leads=3)
    out = verify(VerifyConfig(forecast=str(tmp_path / "fc.nc"), truth=str(tmp_path / "era5.nc"),
                              baselines=["persistence"], out=str(tmp_path / "s.nc")))
    ds = open_scores(out)
    np.testing.assert_allclose(ds["gh"].sel(model="forecast", metric="rmse").isel(lead_time=0), 0.0, atol=1e-5)
    assert np.isnan(ds["gh"].sel(metric="acc")).all()  # no climatology: ACC undefined
    assert np.isfinite(ds["gh"].sel(model="forecast", metric="crps")).all()


def test_every_group_of_the_scores_passes_the_cf_checker(scored, tmp_path) -> None:
    """The checker stops at groups (its cross-group check assumes a 'time' dim in each), so
    each group is also checked as a file of its own, copied without re-encoding."""
    out, _, _ = scored
    assert cf_failures(out, tmp_path) == []
    with netCDF4.Dataset(out) as nc:
        groups, file_attrs = list(nc.groups), {k: nc.getncattr(k) for k in nc.ncattrs()}
    assert groups == ["rank_histogram", "spectra", "init_sums"]
    for group in groups:
        with xr.open_dataset(out, group=group, decode_cf=False) as raw:   # the bytes on disk, attributes as written
            raw.attrs = {**file_attrs, **raw.attrs}                      # a group belongs to the file's attributes
            raw.to_netcdf(tmp_path / f"{group}.nc", encoding={v: {"_FillValue": raw[v].attrs.pop("_FillValue", None)}
                                                             for v in raw.variables})
        assert cf_failures(tmp_path / f"{group}.nc", tmp_path) == [], group


def test_scores_streamed_over_init_chunks_equal_scores_in_one_chunk(tmp_path: Path) -> None:
    """Chunks of 1 and 2 init times give the scores of one chunk (NaN holes included: the last
    init's late leads have no truth and one member has a hole), and an independent xarray
    weighted mean confirms the pooled RMSE and the ensemble-mean RMSE."""
    truth = make_store(tmp_path / "store.zarr")
    fc = make_forecast(tmp_path / "fc.nc", truth, members=3, inits=[0, 3, 7, 12], leads=6)
    fc["gh"][1, 2, 3, :2, :5] = np.nan
    fc.to_netcdf(tmp_path / "holes.nc")
    base = dict(forecast=str(tmp_path / "holes.nc"), truth=str(tmp_path / "store.zarr"))
    whole = open_scores(verify(VerifyConfig(**base, init_chunk=100, out=str(tmp_path / "whole.nc"))))
    for chunk in (1, 2):
        part = open_scores(verify(VerifyConfig(**base, init_chunk=chunk, out=str(tmp_path / f"c{chunk}.nc"))))
        for v in VARIABLES:
            np.testing.assert_allclose(part[v].values, whole[v].values, rtol=1e-10, atol=1e-12, equal_nan=True)
        for group in ("rank_histogram", "spectra"):
            a, b = open_scores(tmp_path / f"c{chunk}.nc", group), open_scores(tmp_path / "whole.nc", group)
            np.testing.assert_allclose(a["gh"].values, b["gh"].values, rtol=1e-10, equal_nan=True)
    lead = 3
    valid = fc["valid_time"].isel(lead_time=lead).values
    t = truth["gh"].reindex(time=valid).rename(time="init_time").assign_coords(init_time=fc["init_time"].values)
    f = fc["gh"].isel(lead_time=lead).astype(float)
    err2 = (f - t) ** 2
    w = GRID.area_weights() * xr.ones_like(err2)
    expected = float(np.sqrt(err2.weighted(w.where(err2.notnull(), 0.0)).mean()))
    got = whole["gh"].sel(model="forecast", metric="rmse", region="global").isel(lead_time=lead)
    assert float(got) == pytest.approx(expected, rel=1e-9)
    mean_err2 = (f.mean("member", skipna=False) - t) ** 2
    wm = (GRID.area_weights() * xr.ones_like(mean_err2)).where(mean_err2.notnull(), 0.0)
    got = whole["gh"].sel(model="forecast", metric="ens_rmse", region="global").isel(lead_time=lead)
    assert float(got) == pytest.approx(float(np.sqrt(mean_err2.weighted(wm).mean())), rel=1e-9)


def test_forecast_on_another_grid_is_scored_against_the_regridded_truth(tmp_path: Path) -> None:
    truth = make_store(tmp_path / "store.zarr")
    make_regridded_forecast(tmp_path / "fine.nc", truth, Grid.parse("equiangular:17x32"))
    base = dict(forecast=str(tmp_path / "fine.nc"), truth=str(tmp_path / "store.zarr"), baselines=["persistence"])
    ds = open_scores(verify(VerifyConfig(**base, out=str(tmp_path / "s.nc"))))
    # the forecast is the truth regridded with the same operator: no error at any lead time
    np.testing.assert_allclose(ds["gh"].sel(model="forecast", metric="rmse"), 0.0, atol=1e-3)
    assert float(ds["gh"].sel(model="persistence", metric="rmse", region="global").isel(lead_time=2)) > 0.1
    with pytest.raises(InputError, match="truth's grid legendre-gauss:8x16 differs .* set regrid_method"):
        verify(VerifyConfig(**base, regrid_method=None, out=str(tmp_path / "t.nc")))


def test_verify_on_a_dask_distributed_cluster_gives_the_same_scores(scored, tmp_path: Path) -> None:
    from distributed import LocalCluster

    out, _, _ = scored
    config = VerifyConfig(forecast=str(out.with_name("fc.nc")), truth=str(out.with_name("store.zarr")),
                          out=str(tmp_path / "cluster.nc"), init_chunk=1)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        on_cluster = open_scores(verify(config.model_copy(update={"scheduler": cluster.scheduler_address})))
    here = open_scores(out)
    for v in VARIABLES:
        np.testing.assert_allclose(on_cluster[v].values, here[v].values, rtol=1e-10, equal_nan=True)
