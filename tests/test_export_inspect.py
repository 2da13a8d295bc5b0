"""`forecast export --format cdo` (read by CDO and the CF checker) and `forecast inspect`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cf_check import cf_failures
from rollout_factories import make_checkpoint, make_swe_store, rollout_config

from forecast.cli import main
from forecast.config import VerifyConfig
from forecast.export import export_cdo, export_name
from forecast.rollout import open_forecast, rollout
from forecast.verify.workflow import verify
from pipelines.errors import InputError

INITS = ["2020-03-20T02", "2020-03-20T05"]


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    store = make_swe_store(root / "store.zarr", n_times=24)
    ckpt = make_checkpoint(root / "model.pt", store)
    fc = rollout(rollout_config([ckpt], store, root / "fc.zarr", lead="3h", init_times=INITS))
    scores = verify(VerifyConfig(forecast=str(fc), truth=str(store), baselines=["persistence"],
                                 out=str(root / "scores.nc")))
    return {"root": root, "store": store, "ckpt": ckpt, "fc": fc, "scores": scores,
            "files": root / "exported", "paths": export_cdo(fc, root / "exported")}


def test_one_file_per_init_and_member_with_time_first_and_unlimited(made):
    fc = open_forecast(made["fc"])
    assert len(made["paths"]) == 2 * 3
    first = made["files"] / export_name("fc", pd.Timestamp(INITS[1]), 2)
    with netCDF4.Dataset(first) as nc:
        assert nc.dimensions["time"].isunlimited() and list(nc.dimensions)[0] == "time"
        assert nc["gh"].dimensions == ("time", "lat", "lon")
        assert nc["gh"].getncattr("coordinates") == "forecast_period forecast_reference_time realization"
    ds = xr.open_dataset(first)
    assert (ds["time"].values == fc["valid_time"].isel(init_time=1).values).all()
    assert (ds["forecast_period"].values == np.arange(4)).all() and int(ds["realization"]) == 2
    assert pd.Timestamp(ds["forecast_reference_time"].values) == pd.Timestamp(INITS[1])
    np.testing.assert_array_equal(ds["gh"].values, fc["gh"].isel(member=2, init_time=1).values)


def test_exported_files_pass_the_cf_checker(made, tmp_path):
    assert cf_failures(made["paths"][0], tmp_path) == []


@pytest.mark.skipif(shutil.which("cdo") is None, reason="cdo is not installed (.ci/run installs it)")
def test_cdo_reads_the_files_and_averages_the_members(made, tmp_path):
    one = made["paths"][0]
    info = subprocess.run(["cdo", "sinfo", str(one)], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert "gaussian" in info.stdout and "4 steps" in info.stdout and "2020-03-20T02:00:00" in info.stdout
    members = sorted(made["files"].glob("fc_20200320T0200_m*.nc"))
    mean = tmp_path / "mean.nc"
    subprocess.run(["cdo", "-s", "ensmean", *map(str, members), str(mean)], check=True, capture_output=True)
    expected = open_forecast(made["fc"])["u"].isel(init_time=0).mean("member")
    np.testing.assert_allclose(xr.open_dataset(mean)["u"].values, expected.values, rtol=1e-6)


def test_export_refuses_an_incomplete_forecast(made, tmp_path):
    import zarr

    partial = tmp_path / "fc.zarr.partial"
    shutil.copytree(made["fc"], partial)
    zarr.open_group(str(partial), mode="r+").attrs["complete"] = 0   # as a killed rollout leaves it
    zarr.consolidate_metadata(str(partial))
    with pytest.raises(InputError, match="not a complete forecast"):
        export_cdo(partial, tmp_path / "out")


@pytest.mark.parametrize("kind, expected", [
    ("store", ["training store", "legendre-gauss:16x32", "gh, u, v, vo"]),
    ("ckpt", ["checkpoint", "verified", "sfno", "parameters"]),
    ("fc", ["forecast (forecast rollout), complete", "members    3", "init times 2: 2020-03-20 02:00"]),
    ("scores", ["scores (forecast verify)", "persistence", "RMSE"]),
])
def test_inspect_summarises_every_kind(made, capfd, kind, expected):
    assert main(["inspect", str(made[kind])]) == 0
    out, _ = capfd.readouterr()
    for text in expected:
        assert text in out, out
    assert len(out.splitlines()) <= 10


def test_inspect_and_export_errors_are_one_line(made, capfd, tmp_path):
    assert main(["inspect", str(tmp_path / "nothing.nc")]) == 2
    assert main(["export", str(made["fc"]), "--out", str(tmp_path), "--format", "grib"]) == 2
    _, err = capfd.readouterr()
    assert [line.startswith("error: ") for line in err.strip().splitlines()] == [True, True]
    assert "nothing.nc does not exist" in err and "--format 'grib'" in err
