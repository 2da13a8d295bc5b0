"""Ingest: ERA5 conventions, aliases, levels, time selection and bad input (real files)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factories import make_era5_like, write_era5_like
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.ingest import open_inputs, select_times
from pipelines.prepare import select

GRID = Grid.parse("equiangular:19x36")
TIMES = pd.date_range("2020-01-01", periods=4, freq="6h")


@pytest.mark.parametrize("fmt", ["netcdf", "zarr"])
@pytest.mark.parametrize("convention,lat_order,lon_convention", [
    ("classic", "descending", "0-360"), ("valid_time", "ascending", "-180-180"),
    ("classic", "ascending", "-180-180"), ("valid_time", "descending", "0-360")])
def test_conventions_normalise_to_the_same_data(tmp_path, fmt, convention, lat_order, lon_convention):
    write_era5_like(tmp_path, GRID, TIMES, ["t2m", "z"], convention=convention, lat_order=lat_order,
                    lon_convention=lon_convention, fmt=fmt, files=2)
    ds, paths, grid = open_inputs([str(tmp_path / "*")])
    assert grid == GRID and len(paths) == 2
    assert ds["t2m"].chunks is not None  # lazy
    state = select(ds, ["t2m", "z500"])
    ref = make_era5_like(GRID, TIMES, ["t2m", "z"])
    np.testing.assert_array_equal(state["t2m"].values, ref["t2m"].values)
    np.testing.assert_array_equal(state["z500"].values, ref["z"].sel(level=500).values)
    np.testing.assert_allclose(state["lat"].values, GRID.lat, atol=1e-9)
    np.testing.assert_allclose(state["lon"].values, GRID.lon, atol=1e-9)
    assert (pd.DatetimeIndex(state["time"].values) == TIMES).all()


def test_long_name_aliases_and_static(tmp_path):
    write_era5_like(tmp_path, GRID, TIMES, ["t2m", "msl"], long_names=True, static=["lsm"])
    ds, _, _ = open_inputs([str(tmp_path / "*.nc")])
    state = select(ds, ["t2m", "mean_sea_level_pressure"])
    assert list(state.data_vars) == ["t2m", "mean_sea_level_pressure"]
    assert state["t2m"].attrs["units"] == "K" and state["t2m"].attrs["standard_name"] == "air_temperature"
    static = select(ds, ["land_sea_mask"], static=True)
    assert static["land_sea_mask"].dims == ("lat", "lon")


def test_missing_variable_lists_what_exists(tmp_path):
    write_era5_like(tmp_path, GRID, TIMES, ["t2m", "z"])
    ds, _, _ = open_inputs([str(tmp_path / "*.nc")])
    with pytest.raises(InputError, match=r"'u10' is not in the input; available: t2m, z \(levels 250, 500, 850"):
        select(ds, ["u10"])
    with pytest.raises(InputError, match="level 300 of 'z'"):
        select(ds, ["z300"])


def test_files_on_different_grids(tmp_path):
    write_era5_like(tmp_path / "a", GRID, TIMES[:2], ["t2m"])
    write_era5_like(tmp_path / "b", "equiangular:37x72", TIMES[2:], ["t2m"])
    with pytest.raises(InputError, match="different grids: .*equiangular:19x36.*equiangular:37x72"):
        open_inputs([str(tmp_path / "a/*.nc"), str(tmp_path / "b/*.nc")])


def test_duplicate_times_across_files(tmp_path):
    write_era5_like(tmp_path / "a", GRID, TIMES[:3], ["t2m"])
    write_era5_like(tmp_path / "b", GRID, TIMES[2:], ["t2m"])
    with pytest.raises(InputError, match=r"duplicate time 2020-01-01 12:00:00 across"):
        open_inputs([str(tmp_path / "a/*.nc"), str(tmp_path / "b/*.nc")])


def test_non_monotonic_times_in_a_file(tmp_path):
    ds = make_era5_like(GRID, TIMES[[0, 2, 1, 3]], ["t2m"])
    ds.to_netcdf(tmp_path / "x.nc")
    with pytest.raises(InputError, match=r"x.nc: times are not increasing"):
        open_inputs([str(tmp_path / "x.nc")])


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT"])
def test_truncated_file_is_named(tmp_path, fmt):
    write_era5_like(tmp_path, GRID, TIMES[:2], ["t2m"], files=1)
    path = tmp_path / "bad.nc"
    make_era5_like(GRID, TIMES[2:], ["t2m"]).to_netcdf(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cannot read .*bad.nc \(unreadable or truncated"):
        open_inputs([str(tmp_path / "*.nc")])


def test_unmatched_input():
    with pytest.raises(InputError, match="matches no file"):
        open_inputs(["/nonexistent/*.nc"])


def _state(times):
    return make_era5_like(GRID, times, ["t2m"]).rename(latitude="lat", longitude="lon").chunk({"time": 1})


def test_time_step_selects_and_interpolates():
    hourly = pd.date_range("2020-01-01", periods=13, freq="3h")
    ds = _state(hourly)
    out, step, gaps = select_times(ds, None, None, "6h")
    assert step == pd.Timedelta("6h") and gaps == [] and out.sizes["time"] == 7
    np.testing.assert_array_equal(out["t2m"].values, ds["t2m"].values[::2])
    out, _, _ = select_times(ds, None, None, "90min")
    mid = 0.5 * (ds["t2m"].values[0].astype(np.float64) + ds["t2m"].values[1])
    np.testing.assert_allclose(out["t2m"].values[1], mid, rtol=1e-6)


def test_missing_times_are_reported_not_dropped_silently():
    times = pd.date_range("2020-01-01", periods=8, freq="6h").delete([3, 4])
    ds = _state(times)
    with pytest.warns(UserWarning, match="2 of 8 times at step 0 days 06:00:00 fall in gaps"):
        out, _, gaps = select_times(ds, None, None, "6h")
    assert gaps == ["2020-01-01 18:00:00", "2020-01-02 00:00:00"]
    assert out.sizes["time"] == 6
    with pytest.warns(UserWarning, match="irregular times"):
        _, step, gaps = select_times(ds, None, None, None)
    assert step == pd.Timedelta("6h") and len(gaps) == 1
