"""GRIB input: mixed level types, accumulations, both latitude orders, GRIB vs NetCDF stores, bad files.

Every GRIB file is written here with ecCodes (:mod:`grib_factories`), with the values of
its NetCDF twin (:func:`factories.write_era5_like`).
"""

from __future__ import annotations

import os
import stat

import dask
import numpy as np
import pandas as pd
import pytest
from factories import make_era5_like, write_era5_like
from grib_factories import packing_tolerance, write_grib

from forecast.cli import main
from pipelines.config import PrepareConfig
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.ingest import open_inputs
from pipelines.prepare import prepare, select
from pipelines.store import open_store

GRID = Grid.parse("equiangular:19x36")
TIMES = pd.date_range("2020-01-01", periods=6, freq="6h")
ERA5 = ["t2m", "u10", "v10", "msl", "tp", "z", "t"]
REQUEST = ["t2m", "u10", "v10", "msl", "tp", "z500", "t850"]


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """The GRIB index cache of each test in its own directory (XDG_CACHE_HOME)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _refuse_compute(dsk, keys, **kwargs):
    raise AssertionError("opening GRIB computed dask data; it must stay lazy")


def reference(grid: Grid, times: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    ref = make_era5_like(grid, times, ERA5, levels=(500, 850))
    return {"t2m": ref["t2m"].values, "u10": ref["u10"].values, "v10": ref["v10"].values, "msl": ref["msl"].values,
            "tp": ref["tp"].values, "z500": ref["z"].sel(level=500).values, "t850": ref["t"].sel(level=850).values}


@pytest.mark.parametrize("edition", [1, 2])
@pytest.mark.parametrize("lat_order", ["descending", "ascending"])
@pytest.mark.parametrize("grid", ["equiangular:19x36", "legendre-gauss:16x32"])
def test_mixed_level_types_read_as_netcdf_names_within_packing(tmp_path, edition, lat_order, grid):
    path = write_grib(tmp_path / "era5.grib", grid, TIMES, ERA5, edition=edition, lat_order=lat_order)
    with dask.config.set(scheduler=_refuse_compute):
        ds, paths, source = open_inputs([str(path)])
        state = select(ds, REQUEST)
    assert source == Grid.parse(grid) and paths == [path]
    assert sorted(ds.data_vars) == sorted(ERA5) and ds["z"].dims == ("time", "level", "lat", "lon")
    assert (pd.DatetimeIndex(state["time"].values) == TIMES).all()
    np.testing.assert_allclose(state["lat"].values, Grid.parse(grid).lat, atol=1e-6)   # north to south
    for name, expected in reference(Grid.parse(grid), TIMES).items():
        np.testing.assert_allclose(state[name].values, expected, rtol=0, atol=packing_tolerance(expected, 16))
    assert state["t2m"].attrs == {"units": "K", "long_name": "2 metre temperature", "standard_name": "air_temperature"}
    assert state["z500"].attrs["long_name"] == "geopotential at 500 hPa"


def test_tp_is_stamped_with_the_end_of_its_accumulation(tmp_path):
    path = write_grib(tmp_path / "tp.grib2", GRID, TIMES, ["tp"], accumulation_hours=1)
    ds, _, _ = open_inputs([str(path)])
    assert (pd.DatetimeIndex(ds["time"].values) == TIMES).all()   # dataTime 06/18 + the end of the step
    assert ds["tp"].attrs["cell_methods"] == "time: sum (interval: 1 hours)"
    six = write_grib(tmp_path / "six.grib2", GRID, TIMES + pd.Timedelta("36h"), ["tp"], accumulation_hours=6)
    (tmp_path / "mixed.grib2").write_bytes(path.read_bytes() + six.read_bytes())
    with pytest.raises(InputError, match=r"mixed.grib2: tp \(paramId 228\) \(stepType accum\) spans different "
                                         r"periods \(1 hours, 6 hours\)"):
        open_inputs([str(tmp_path / "mixed.grib2")])


def _config(tmp_path, inputs, out, **kw) -> PrepareConfig:
    return PrepareConfig(**{**dict(inputs=inputs, variables=REQUEST, grid="legendre-gauss:8x16", out=str(out),
                                   scheduler="synchronous", climatology_smoothing_days=1), **kw})


def test_grib_and_its_netcdf_twin_prepare_equal_stores(tmp_path):
    """The ERA5-style case: 2 m, 10 m, mean sea level, tp and pressure levels in one GRIB2 file."""
    write_grib(tmp_path / "grib" / "era5.grib2", GRID, TIMES, ERA5)
    write_era5_like(tmp_path / "nc", GRID, TIMES, ERA5, levels=(500, 850))
    from_grib = open_store(prepare(_config(tmp_path, [str(tmp_path / "grib")], tmp_path / "g.zarr")))
    from_nc = open_store(prepare(_config(tmp_path, [str(tmp_path / "nc")], tmp_path / "n.zarr")))
    assert from_grib.grid == from_nc.grid and from_grib.variables == from_nc.variables == REQUEST
    assert (from_grib.times == from_nc.times).all() and from_grib.time_step == from_nc.time_step
    expected = reference(GRID, TIMES)
    for name in REQUEST:   # conservative regridding averages: the packing error bound carries over
        np.testing.assert_allclose(from_grib.data[name].values, from_nc.data[name].values, rtol=0,
                                   atol=packing_tolerance(expected[name], 16) + 1e-6 * np.abs(expected[name]).max())
        assert from_grib.data[name].attrs["units"] == from_nc.data[name].attrs["units"]


def test_cli_prepares_a_grib_file_in_a_read_only_directory_and_adds_nothing(tmp_path, cache_home, capfd):
    source = tmp_path / "ro"
    write_grib(source / "era5.grib2", GRID, TIMES, ERA5, edition=1)
    (source / ".incoming.grib2").write_bytes(b"GRIB half written")   # hidden: a delivery in progress
    before = sorted(os.listdir(source))
    source.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        status = main(["prepare", "--input", str(source), "--variables", ",".join(REQUEST), "--grid",
                       "legendre-gauss:8x16", "--out", str(tmp_path / "s.zarr"), "--scheduler", "synchronous"])
    finally:
        source.chmod(stat.S_IRWXU)
    assert status == 0, capfd.readouterr().err[-2000:]
    assert sorted(os.listdir(source)) == before   # no .idx beside the data
    assert len(list((cache_home / "sphere-forecast" / "grib-index").glob("*.idx"))) == 1
    assert open_store(tmp_path / "s.zarr").times.size == TIMES.size


def test_the_index_is_cached_and_renewed_when_the_file_changes(tmp_path, cache_home):
    path = write_grib(tmp_path / "a.grib2", GRID, TIMES[:2], ["t2m"])
    open_inputs([str(path)])
    (index,) = (cache_home / "sphere-forecast" / "grib-index").glob("*.idx")
    stamp = index.stat().st_mtime_ns
    open_inputs([str(path)])
    assert index.stat().st_mtime_ns >= stamp and index.read_bytes()   # read, not rebuilt
    write_grib(path, GRID, TIMES, ["t2m"])                              # a new delivery under the same name
    ds, _, _ = open_inputs([str(path)])
    assert ds.sizes["time"] == TIMES.size


def test_levels_of_several_requests_and_a_name_on_two_level_types(tmp_path):
    z = write_grib(tmp_path / "z.grib2", GRID, TIMES[:2], ["z"], levels=(500, 850))
    t = write_grib(tmp_path / "t.grib2", GRID, TIMES[:2], ["t"], levels=(850,))
    orography = write_grib(tmp_path / "orog.grib2", GRID, TIMES[:2], ["z"], codes={"z": (129, "surface", 0)})
    (tmp_path / "all.grib2").write_bytes(z.read_bytes() + t.read_bytes() + orography.read_bytes())
    ds, _, _ = open_inputs([str(tmp_path / "all.grib2")])
    assert set(ds.data_vars) == {"z", "t850", "z_surface"}
    state = select(ds, ["z500", "t850"])
    ref = make_era5_like(GRID, TIMES[:2], ["z", "t"], levels=(500, 850))
    np.testing.assert_allclose(state["t850"].values, ref["t"].sel(level=850).values, atol=0.01)
    assert select(ds, ["z_surface"], static=True)["z_surface"].dims == ("lat", "lon")
    with pytest.raises(InputError, match="'t500' is not in the input; available: z .*t850.*all.grib2"):
        select(ds, ["t500"])


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    import eccodes

    root = tmp_path_factory.mktemp("bad_grib")
    good = write_grib(root / "good.grib2", GRID, TIMES[:2], ["t2m", "msl"])
    data = good.read_bytes()
    (root / "truncated.grib2").write_bytes(data[: len(data) // 2 + 7])
    (root / "text.grib").write_text("a weather report\n")
    fine = write_grib(root / "fine.grib2", "equiangular:37x72", TIMES[:2], ["z"], levels=(500,))
    (root / "two_grids.grib2").write_bytes(data + fine.read_bytes())
    (root / "twice.grib2").write_bytes(data + data)
    for sample in ("reduced_gg_pl_grib2", "sh_ml_grib2"):
        handle = eccodes.codes_grib_new_from_samples(sample)
        with open(root / f"{sample}.grib2", "wb") as f:
            eccodes.codes_write(handle, f)
        eccodes.codes_release(handle)
    members = []
    for number in (1, 2):
        handle = eccodes.codes_grib_new_from_samples("GRIB2")
        eccodes.codes_set(handle, "productDefinitionTemplateNumber", 1)
        eccodes.codes_set(handle, "perturbationNumber", number)
        members.append(eccodes.codes_get_message(handle))
        eccodes.codes_release(handle)
    (root / "ensemble.grib2").write_bytes(b"".join(members))
    write_era5_like(root / "nc", GRID, TIMES[:2], ["t2m"])
    return root


@pytest.mark.parametrize("inputs, culprit", [
    (["truncated.grib2"], "truncated.grib2: is truncated or corrupt (PrematureEndOfFileError"),
    (["text.grib"], "text.grib: is not a GRIB file (no 'GRIB' in its first 17 bytes"),
    (["two_grids.grib2"], "two_grids.grib2: holds fields on 2 grids (regular_ll with 684 points: msl (paramId 151), "
                          "2t (paramId 167); regular_ll with 2664 points: z (paramId 129))"),
    (["twice.grib2"], "twice.grib2: 2t (paramId 167) on heightAboveGround 2 valid at 2020-01-01T00:00:00 appears "
                      "2 times"),
    (["reduced_gg_pl_grib2.grib2"], "gridType reduced_gg: reduced Gaussian (ERA5's native MARS grid); request "
                                    "grid=0.25/0.25"),
    (["sh_ml_grib2.grib2"], "gridType sh: spherical-harmonic coefficients"),
    (["ensemble.grib2"], "ensemble.grib2: holds 2 ensemble members (number 1..2)"),
    (["good.grib2", "nc"], "inputs mix GRIB"),
    (["good.grib2"], "variable 'u10' is not in the input; available: msl, t2m (inputs: "),
])
def test_bad_grib_is_one_error_line_naming_the_file(bad, tmp_path, capfd, inputs, culprit):
    argv = ["prepare", "--grid", "legendre-gauss:8x16", "--variables", "t2m,u10", "--out", str(tmp_path / "s.zarr"),
            "--scheduler", "synchronous"]
    status = main(argv + [arg for item in inputs for arg in ("--input", str(bad / item))])
    err = capfd.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert status == 2 and len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert culprit in errors[0], errors[0]
    assert not (tmp_path / "s.zarr").exists()
