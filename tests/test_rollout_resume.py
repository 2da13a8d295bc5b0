"""A rollout killed mid-way (SIGKILL, a real subprocess) resumes to a bit-identical output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from rollout_factories import (make_checkpoint, make_swe_store, single_thread_rollout, wait_for_leads,
                               write_rollout_config)

from forecast.rollout import open_forecast
from forecast.rollout.io import partial_path

REPO = Path(__file__).resolve().parents[1]


def start_rollout(config_file: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FORECAST_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "forecast.rollout", str(config_file)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_a_killed_rollout_resumes_bit_identical_to_an_uninterrupted_one(tmp_path):
    store = make_swe_store(tmp_path / "store.zarr", n_times=24)
    ckpt = make_checkpoint(tmp_path / "model.pt", store, weight_scale=0.3)
    options = dict(init_times=["2020-03-20T02", "2020-03-20T05"], lead="40h", members=3,
                   perturbation={"kind": ["spherical-gaussian"], "amplitude": 0.1, "length_scale_km": 1500.0})
    reference = single_thread_rollout([ckpt], store, tmp_path / "reference.zarr", **options)

    out = tmp_path / "resumed.zarr"
    config_file = write_rollout_config(tmp_path / "rollout.yaml", [ckpt], store, out, **options)
    proc = start_rollout(config_file)
    completed = wait_for_leads(proc, partial_path(out), at_least=3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists() and partial_path(out).is_dir()
    assert completed[0] < 40, "the run was not interrupted mid-way"

    partial = open_forecast(partial_path(out))
    assert np.isnan(partial["gh"].isel(init_time=1).values).all()   # nothing of init 2 yet

    proc = start_rollout(config_file)                               # the same command again
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert out.is_dir() and not partial_path(out).exists()

    expected, actual = open_forecast(reference), open_forecast(out)
    for name in expected.data_vars:
        a, b = expected[name].values, actual[name].values
        assert not np.isnan(a).any()
        assert np.array_equal(a, b), f"{name} differs after resuming"
    assert expected.attrs["config_hash"] == actual.attrs["config_hash"]
