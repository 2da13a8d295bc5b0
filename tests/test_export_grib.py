"""`forecast export --format grib2`: read back with ecCodes, cfgrib, CDO and our own GRIB ingest."""

from __future__ import annotations

import logging
import shutil
import subprocess
import warnings
from pathlib import Path

import cfgrib
import eccodes
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from factories import make_era5_like
from rollout_factories import make_checkpoint, make_swe_store, rollout_config

from forecast.cli import main
from forecast.export_grib import export_grib, grib_name
from forecast.rollout import open_forecast, rollout
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.ingest import open_inputs

INITS = ["2020-03-20T02", "2020-03-20T05"]
ERA5 = ["t2m", "u10", "v10", "msl", "tp", "z500", "t850"]


@pytest.fixture(scope="module")
def swe(tmp_path_factory) -> dict[str, Path]:
    """A 3-member shallow-water forecast (gh, u, v, vo on Legendre-Gauss 16x32), 2 init times."""
    root = tmp_path_factory.mktemp("export_grib")
    store = make_swe_store(root / "store.zarr", n_times=24)
    fc = rollout(rollout_config([make_checkpoint(root / "model.pt", store)], store, root / "fc.zarr", lead="3h",
                                init_times=INITS))
    return {"root": root, "fc": fc}


def era5_forecast(path: Path, members: int = 1, grid: str = "equiangular:19x36", first_lead: str = "0h") -> Path:
    """A complete forecast file with ERA5's variables, 3 lead times 6 h apart (the layout of
    forecast/rollout/io.py)."""
    g, lead = Grid.parse(grid), pd.timedelta_range(first_lead, periods=3, freq="6h")
    ref = make_era5_like(g, pd.date_range("2020-01-01", periods=members * 3, freq="1h"),
                         ["t2m", "u10", "v10", "msl", "tp", "z", "t"], levels=(500, 850))
    fields = {"z500": ref["z"].sel(level=500), "t850": ref["t"].sel(level=850),
              **{n: ref[n] for n in ("t2m", "u10", "v10", "msl", "tp")}}
    data = {n: (("member", "init_time", "lead_time", "lat", "lon"),
                f.values.reshape(members, 1, 3, g.nlat, g.nlon), {"units": f.attrs["units"]})
            for n, f in fields.items()}
    ds = xr.Dataset(data, coords={"member": np.arange(members, dtype=np.int32), "init_time": [np.datetime64(
        "2020-01-01T00", "ns")], "lead_time": lead.values, "lat": g.lat, "lon": g.lon}, attrs={"complete": 1})
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=True)
    return path


def first_message_keys(path: Path, keys: tuple[str, ...]) -> dict:
    with open(path, "rb") as f:
        handle = eccodes.codes_grib_new_from_file(f)
        try:
            return {k: eccodes.codes_get(handle, k) for k in keys}
        finally:
            eccodes.codes_release(handle)


def read_cfgrib(path: Path, caplog, capfd) -> dict[str, xr.DataArray]:
    """Every variable of ``path`` through cfgrib, asserting that neither cfgrib (log, warnings)
    nor ecCodes (stderr) warns about the file. xarray's notices of its own changing defaults
    (FutureWarning, from cfgrib's merge) are not about the file."""
    capfd.readouterr()
    with caplog.at_level(logging.WARNING, logger="cfgrib"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        datasets = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""})
        out = {str(n): da.load() for ds in datasets for n, da in ds.data_vars.items()}
    about_file = [str(w.message) for w in caught if not issubclass(w.category, (FutureWarning, DeprecationWarning))]
    about_file += [r.getMessage() for r in caplog.records
                   if r.name.startswith("cfgrib") and r.levelno >= logging.WARNING]
    assert not about_file and not capfd.readouterr().err, about_file
    return out


def tolerance(values: np.ndarray, bits: int) -> np.ndarray:
    """One packing step per field (the last two axes): (max - min) / (2**bits - 1)."""
    return np.ptp(values, axis=(-2, -1), keepdims=True) / (2**bits - 1)


def test_ensemble_file_per_init_round_trips_through_cfgrib(swe, caplog, capfd):
    paths = export_grib(swe["fc"], swe["root"] / "g")
    assert [p.name for p in paths] == [grib_name("fc", pd.Timestamp(i), None) for i in INITS]
    fc = open_forecast(swe["fc"])
    read = read_cfgrib(paths[1], caplog, capfd)
    assert sorted(read) == ["gh", "u", "v", "vo"]
    for name, da in read.items():
        assert da.dims == ("number", "step", "latitude", "longitude") and da.attrs["GRIB_typeOfLevel"] == "atmosphere"
        assert (da["number"].values == fc["member"].values).all()
        assert pd.Timestamp(da["time"].values) == pd.Timestamp(INITS[1])
        assert (pd.TimedeltaIndex(da["step"].values) == pd.TimedeltaIndex(fc["lead_time"].values)).all()
        expected = fc[name].isel(init_time=1).transpose("member", "lead_time", "lat", "lon").values
        assert (np.abs(da.values - expected) <= tolerance(expected, 16)).all()
    assert read["gh"].attrs["GRIB_paramId"] == 156 and read["vo"].attrs["GRIB_paramId"] == 138
    keys = first_message_keys(paths[1], ("productDefinitionTemplateNumber", "perturbationNumber",
                                         "numberOfForecastsInEnsemble", "typeOfEnsembleForecast", "dataDate",
                                         "dataTime", "gridType", "N", "packingType", "bitsPerValue"))
    assert keys == {"productDefinitionTemplateNumber": 1, "perturbationNumber": 0, "numberOfForecastsInEnsemble": 3,
                    "typeOfEnsembleForecast": 3, "dataDate": 20200320, "dataTime": 500, "gridType": "regular_gg",
                    "N": 8, "packingType": "grid_simple", "bitsPerValue": 16}


@pytest.mark.skipif(shutil.which("cdo") is None, reason="cdo is not installed (.ci/run installs it)")
def test_cdo_reads_the_per_member_files_without_a_warning(swe):
    paths = export_grib(swe["fc"], swe["root"] / "m", per_member=True)
    assert len(paths) == 2 * 3 and paths[4].name == "fc_20200320T0500_m001.grib2"
    for path in (paths[0], swe["root"] / "g" / grib_name("fc", pd.Timestamp(INITS[0]), None)):
        info = subprocess.run(["cdo", "sinfon", str(path)], capture_output=True, text=True)
        assert info.returncode == 0 and info.stderr == "", info.stderr
        assert "gaussian" in info.stdout and "F8" in info.stdout and "2020-03-20 05:00:00" in info.stdout
    mean = subprocess.run(["cdo", "-s", "outputkey,value", "-timmean", "-selname,gh", str(paths[4])],
                          capture_output=True, text=True, check=True)
    expected = open_forecast(swe["fc"])["gh"].isel(init_time=1, member=1).mean("lead_time").values
    values = np.array(mean.stdout.split()[2:], float)   # after the "#   value" header
    np.testing.assert_allclose(values, expected.ravel(), rtol=1e-4)


def test_era5_variables_map_to_wmo_codes_and_read_back_as_era5_names(tmp_path, caplog, capfd):
    fc = era5_forecast(tmp_path / "fc.zarr")
    (path,) = export_grib(fc, tmp_path / "g")
    read = read_cfgrib(path, caplog, capfd)
    assert sorted(read) == ["msl", "t", "t2m", "tp", "u10", "v10", "z"]
    expected_codes = {"t2m": (167, "heightAboveGround"), "u10": (165, "heightAboveGround"), "msl": (151, "meanSea"),
                      "tp": (228228, "surface"), "z": (129, "isobaricInhPa"), "t": (130, "isobaricInhPa")}
    for name, (param, level_type) in expected_codes.items():
        assert (read[name].attrs["GRIB_paramId"], read[name].attrs["GRIB_typeOfLevel"]) == (param, level_type)
    assert float(read["z"]["isobaricInhPa"]) == 500 and float(read["t"]["isobaricInhPa"]) == 850
    source = open_forecast(fc)
    tp = source["tp"].isel(member=0, init_time=0).values * 1000.0   # m -> kg m-2
    assert read["tp"].attrs["GRIB_stepType"] == "accum" and read["tp"].attrs["units"] == "kg m**-2"
    assert (read["tp"].values[0] == 0).all()                           # 0-0 at step 0
    assert (np.abs(read["tp"].values[1:] - tp[1:]) <= tolerance(tp[1:], 16)).all()
    keys = first_message_keys(path, ("productDefinitionTemplateNumber", "gridType", "Ni", "Nj", "centre"))
    assert keys == {"productDefinitionTemplateNumber": 0, "gridType": "regular_ll", "Ni": 36, "Nj": 19,
                    "centre": "255"}
    # prepare's reader takes the export back (valid times, ERA5's names), but not tp's step 0
    with pytest.raises(InputError, match=r"tp \(paramId 228228\) valid at 2020-01-01T00:00:00 spans no time"):
        open_inputs([str(path)])
    (later,) = export_grib(era5_forecast(tmp_path / "later.zarr", first_lead="6h"), tmp_path / "later")
    ds, _, grid = open_inputs([str(later)])
    # z comes at 500 hPa only, t at 850 only: t's level is a variable of its own
    assert grid == Grid.parse("equiangular:19x36") and {"t2m", "msl", "tp", "z", "t850"} <= set(ds.data_vars)
    assert ds["tp"].attrs["cell_methods"] == "time: sum (interval: 6 hours)" and ds["tp"].attrs["units"] == "kg m-2"
    t2m = open_forecast(tmp_path / "later.zarr")["t2m"].isel(member=0, init_time=0).values
    assert (np.abs(ds["t2m"].values - t2m) <= tolerance(t2m, 16)).all()


@pytest.mark.parametrize("bits, packing", [(12, "simple"), (24, "simple"), (16, "ccsds")])
def test_packing_error_is_below_one_step_of_the_bits(tmp_path, caplog, capfd, bits, packing):
    fc = era5_forecast(tmp_path / "fc.zarr", members=2)
    (path,) = export_grib(fc, tmp_path / "g", bits=bits, packing=packing, accumulation=pd.Timedelta("1h"))
    z = read_cfgrib(path, caplog, capfd)["z"].values
    expected = open_forecast(fc)["z500"].isel(init_time=0).values
    error = np.abs(z - expected)
    assert (error <= tolerance(expected, bits)).all()
    if bits < 16:   # the bound is the packing's, not a loose one (at 24 bits float32 rounding dominates)
        assert error.max() > tolerance(expected, bits + 4).min()
    keys = first_message_keys(path, ("packingType", "bitsPerValue"))
    assert keys == {"packingType": f"grid_{packing}", "bitsPerValue": bits}


@pytest.mark.parametrize("argv, culprit", [
    (["--format", "grib2", "--bits", "40"], "--bits 40 is outside 1..32"),
    (["--format", "grib2", "--packing", "jpeg"], "--packing 'jpeg' is not known"),
    (["--format", "grib2", "--accumulation", "soon"], "--accumulation 'soon' is not a duration"),
    (["--format", "grib2", "--accumulation", "12h"], "--accumulation 12h is longer than the lead time 6h"),
    (["--per-member"], "--per-member and --accumulation apply to --format grib2"),
])
def test_bad_export_options_are_one_error_line(tmp_path, capfd, argv, culprit):
    fc = era5_forecast(tmp_path / "fc.zarr")
    assert main(["export", str(fc), "--out", str(tmp_path / "g"), *argv]) == 2
    errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and culprit in errors[0], errors
    assert not list((tmp_path / "g").glob("*"))


def test_variables_without_a_code_and_odd_gaussian_grids_are_refused(tmp_path, capfd):
    fc = era5_forecast(tmp_path / "fc.zarr")
    xr.open_zarr(fc).rename(t850="theta850").to_zarr(tmp_path / "odd.zarr", mode="w", zarr_format=3, consolidated=True)
    assert main(["export", str(tmp_path / "odd.zarr"), "--out", str(tmp_path / "g"), "--format", "grib2"]) == 2
    assert "variable 'theta850' has no GRIB2 code" in capfd.readouterr().err
    odd = era5_forecast(tmp_path / "lg.zarr", grid="legendre-gauss:15x30")
    assert main(["export", str(odd), "--out", str(tmp_path / "g"), "--format", "grib2"]) == 2
    assert "odd number of Gaussian latitudes" in capfd.readouterr().err
    assert not list((tmp_path / "g").glob("*.grib2"))
