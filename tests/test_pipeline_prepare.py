"""End to end: files -> training store; NaNs, atomic writes, append, LocalCluster."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import zarr

from factories import make_era5_like, write_era5_like
from pipelines.config import PrepareConfig
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.prepare import prepare
from pipelines.store import open_store

SOURCE = Grid.parse("equiangular:19x36")
TARGET = "legendre-gauss:8x16"
TIMES = pd.date_range("2020-01-01", periods=6, freq="6h")


def config(tmp_path, **kw) -> PrepareConfig:
    base = dict(inputs=[str(tmp_path / "src" / "*")], variables=["t2m", "z500"], grid=TARGET,
                out=str(tmp_path / "store.zarr"), scheduler="synchronous", climatology_smoothing_days=3)
    return PrepareConfig(**{**base, **kw})


@pytest.mark.parametrize("fmt,convention,lat_order,lon_convention", [
    ("netcdf", "classic", "descending", "0-360"), ("netcdf", "valid_time", "ascending", "-180-180"),
    ("zarr", "valid_time", "descending", "-180-180"), ("zarr", "classic", "ascending", "0-360")])
def test_prepare_writes_a_complete_store(tmp_path, fmt, convention, lat_order, lon_convention):
    write_era5_like(tmp_path / "src", SOURCE, TIMES, ["t2m", "z"], convention=convention, lat_order=lat_order,
                    lon_convention=lon_convention, fmt=fmt, files=2, static=["lsm"])
    path = prepare(config(tmp_path, static_variables=["lsm"]), command="forecast prepare test")
    store = open_store(path)
    assert store.grid == Grid.parse(TARGET) and store.variables == ["t2m", "z500"]
    assert store.time_step == pd.Timedelta("6h") and (store.times == TIMES).all()
    assert store.data["t2m"].dtype == np.float32 and store.data["t2m"].encoding["chunks"] == (1, 8, 16)
    assert store.data["t2m"].attrs["units"] == "K" and store.data["z500"].attrs["standard_name"] == "geopotential"
    assert store.data["lat"].attrs["units"] == "degrees_north"
    ref = make_era5_like(SOURCE, TIMES, ["t2m"]).rename(latitude="lat", longitude="lon")
    src_mean = (ref["t2m"].astype(np.float64) * SOURCE.area_weights().values[:, None]).mean(("lat", "lon"))
    tgt_mean = (store.data["t2m"].astype(np.float64) * Grid.parse(TARGET).area_weights()).mean(("lat", "lon"))
    np.testing.assert_allclose(tgt_mean.values, src_mean.values, rtol=1e-6)
    stats = store.statistics.compute()
    np.testing.assert_allclose(stats["mean"].sel(variable="t2m"), tgt_mean.mean(), rtol=1e-6)
    assert (stats["tendency_std"] > 0).all()
    assert store.climatology["t2m"].dims == ("dayofyear", "hour", "lat", "lon")
    assert store.static["lsm"].dims == ("lat", "lon")
    prov = store.provenance()
    assert prov["command"] == "forecast prepare test" and len(prov["sources"]) == 2
    assert prov["source_grid"] == str(SOURCE) and "package_version" in prov
    assert zarr.open_group(str(path), mode="r").metadata.consolidated_metadata is not None
    assert not list(tmp_path.glob(".tmp-*"))


def test_nans_fail_with_counts_and_leave_nothing(tmp_path):
    write_era5_like(tmp_path / "src", SOURCE, TIMES, ["t2m", "z"], nans={"t2m": "part", "z": "all"})
    with pytest.raises(InputError, match=r"t2m: \d+ NaNs in 1 of 6 steps \(0 all missing\); z500: 684 NaNs in 1 of 6 "
                                         r"steps \(1 all missing\)\); pass --fill nearest"):
        prepare(config(tmp_path))
    assert not (tmp_path / "store.zarr").exists() and not list(tmp_path.glob(".tmp-*"))


def test_nans_filled_nearest(tmp_path):
    write_era5_like(tmp_path / "src", SOURCE, TIMES, ["t2m", "z"], nans={"t2m": "part", "z": "all"})
    with pytest.warns(UserWarning, match="filling NaNs"):
        store = open_store(prepare(config(tmp_path, fill="nearest")))
    assert not store.data["t2m"].isnull().any() and not store.data["z500"].isnull().any()
    # the all-NaN step 1 of z500 is taken from the nearest step with data (0)
    np.testing.assert_array_equal(store.data["z500"].values[1], store.data["z500"].values[0])


def test_infs_are_counted_as_infs_and_refused(tmp_path):
    write_era5_like(tmp_path / "src", SOURCE, TIMES, ["t2m", "z"], nans={"t2m": "inf"})
    with pytest.raises(InputError, match=r"missing values \(t2m: 6 Infs in 1 of 6 steps \(0 all missing\)\); "
                                         r"pass --fill nearest"):
        prepare(config(tmp_path))
    assert not (tmp_path / "store.zarr").exists() and not list(tmp_path.glob(".tmp-*"))


def test_infs_filled_nearest_give_finite_data_and_statistics(tmp_path):
    write_era5_like(tmp_path / "src", SOURCE, TIMES, ["t2m", "z"], nans={"t2m": "inf"})
    with pytest.warns(UserWarning, match="t2m: 6 Infs in 1 of 6 steps"):
        store = open_store(prepare(config(tmp_path, fill="nearest")))
    assert np.isfinite(store.data["t2m"].values).all()
    stats = store.statistics.compute()
    assert all(np.isfinite(stats[v].values).all() for v in stats.data_vars)
    assert 250 < float(stats["mean"].sel(variable="t2m")) < 310


def test_failure_keeps_the_previous_store(tmp_path):
    write_era5_like(tmp_path / "src", SOURCE, TIMES, ["t2m", "z"])
    path = prepare(config(tmp_path))
    before = open_store(path).times
    with pytest.raises(InputError, match="'u10' is not in the input"):
        prepare(config(tmp_path, variables=["u10"], overwrite=True))
    assert (open_store(path).times == before).all() and not list(tmp_path.glob(".tmp-*"))


def test_killed_prepare_leaves_no_complete_looking_store(tmp_path):
    """A write interrupted mid-way (simulated by an exception in the dask graph) leaves nothing."""
    write_era5_like(tmp_path / "src", SOURCE, TIMES, ["t2m"])
    bad = tmp_path / "src" / "era5_000.nc"
    data = bad.read_bytes()
    bad.write_bytes(data[:-200])
    with pytest.raises(InputError, match="era5_000.nc"):
        prepare(config(tmp_path, variables=["t2m"]))
    assert not (tmp_path / "store.zarr").exists()


def test_append_adds_times_and_keeps_statistics(tmp_path):
    write_era5_like(tmp_path / "src", SOURCE, TIMES, ["t2m", "z"])
    write_era5_like(tmp_path / "new", SOURCE, TIMES + pd.Timedelta("36h"), ["t2m", "z"])
    path = prepare(config(tmp_path))
    stats_before = open_store(path).statistics.compute()
    prepare(config(tmp_path, inputs=[str(tmp_path / "new" / "*.nc")], append=True), command="append run")
    store = open_store(path)
    assert store.times.size == 12 and store.times.is_monotonic_increasing
    xr.testing.assert_identical(store.statistics.compute(), stats_before)
    appended = json.loads(store.data.attrs["appended"])
    assert appended[0]["n_times"] == 6 and appended[0]["command"] == "append run"
    fresh = open_store(prepare(config(tmp_path, inputs=[str(tmp_path / "new" / "*.nc")],
                                      out=str(tmp_path / "fresh.zarr"))))
    np.testing.assert_array_equal(store.data["t2m"].values[6:], fresh.data["t2m"].values)
    with pytest.raises(InputError, match="cannot append: 6 time.s. are already in"):
        prepare(config(tmp_path, inputs=[str(tmp_path / "new" / "*.nc")], append=True))
    with pytest.raises(InputError, match="cannot append: .* holds variables"):
        prepare(config(tmp_path, inputs=[str(tmp_path / "new" / "*.nc")], append=True, variables=["t2m"]))
    with pytest.raises(InputError, match="cannot append: .* is on grid legendre-gauss:8x16"):
        prepare(config(tmp_path, inputs=[str(tmp_path / "new" / "*.nc")], append=True, grid="legendre-gauss:6x12"))
    assert open_store(path).times.size == 12


def test_finer_target_warns(tmp_path):
    write_era5_like(tmp_path / "src", "equiangular:7x12", TIMES, ["t2m"])
    with pytest.warns(UserWarning, match="finer than the source"):
        prepare(config(tmp_path, variables=["t2m"], method="bilinear"))


def test_prepare_on_a_local_cluster_with_spectral_regridding(tmp_path):
    write_era5_like(tmp_path / "src", SOURCE, TIMES, ["t2m", "z"], convention="valid_time", files=3)
    path = prepare(config(tmp_path, scheduler=None, n_workers=2, method="spectral", time_step="12h"))
    store = open_store(path)
    assert store.time_step == pd.Timedelta("12h") and store.times.size == 3
    local = open_store(prepare(config(tmp_path, method="spectral", time_step="12h", out=str(tmp_path / "b.zarr"))))
    np.testing.assert_array_equal(store.data["z500"].values, local.data["z500"].values)


def test_swe_source_goes_through_the_same_path(tmp_path):
    from pipelines.config import SWESourceConfig

    cfg = config(tmp_path, source="swe", inputs=[], variables=["gh", "vo"], grid="legendre-gauss:16x32",
                 method="spectral", swe=SWESourceConfig(grid="legendre-gauss:32x64", days=0.25, spinup_days=0.125))
    store = open_store(prepare(cfg))
    assert store.variables == ["gh", "vo"] and store.times.size == 6 and store.time_step == pd.Timedelta("1h")
    assert sorted(p.suffix for p in (tmp_path / "store.zarr.sources").iterdir()) == [".nc"]
    assert json.loads(store.data.attrs["provenance"])["source_grid"] == "legendre-gauss:32x64"


def test_statistics_end_keeps_held_back_days_out_and_short_records_warn(tmp_path):
    write_era5_like(tmp_path / "src", SOURCE, TIMES, ["t2m", "z"])
    with pytest.warns(UserWarning, match="climatology comes from 1 days of data, less than a year"):
        store = open_store(prepare(config(tmp_path, statistics_end="-12h")))
    assert len(store.times) == 6                                    # the data keep every time
    t2m = store.data["t2m"].astype(np.float64)
    w = Grid.parse(TARGET).area_weights()
    first4 = float((t2m.isel(time=slice(0, 4)) * w).mean(("lat", "lon")).mean())
    every = float((t2m * w).mean(("lat", "lon")).mean())
    mean = float(store.statistics["mean"].sel(variable="t2m"))
    assert not np.isclose(every, first4, rtol=1e-6)                 # so the period matters
    assert mean == pytest.approx(first4, rel=1e-6)
    with pytest.raises(InputError, match="statistics_end 'soon'"):
        prepare(config(tmp_path, statistics_end="soon", out=str(tmp_path / "other.zarr")))
