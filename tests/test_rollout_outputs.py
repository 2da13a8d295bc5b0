"""One output, many runs: a lock against concurrent writers, refusal of other parameters,
temporaries that never look complete and are cleaned, one-line write errors.

Real subprocesses of the ``forecast`` command line, real files, real ``flock``.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
import yaml
from rollout_factories import make_checkpoint, make_swe_store, rollout_config, wait_for_leads

from forecast.rollout import open_forecast, rollout
from forecast.rollout.io import is_complete, partial_path
from pipelines.locks import lock_path

REPO = Path(__file__).resolve().parents[1]
# long enough (about 10 s) that a second process starts while the first still runs
OPTIONS = dict(init_times=["2020-03-20T02"], lead="1200h", members=3,
               perturbation={"kind": ["spherical-gaussian"], "amplitude": 0.1, "length_scale_km": 1500.0})


def forecast_cli(*args: str, preexec_fn=None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FORECAST_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "forecast.cli", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec_fn)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    store = make_swe_store(root / "store.zarr", n_times=24)
    ckpt = make_checkpoint(root / "model.pt", store, weight_scale=0.02)   # stays bounded for 1200 steps
    return root, store, ckpt


def write_config(setup, name: str, out: Path, **overrides) -> Path:
    root, store, ckpt = setup
    path = root / name
    options = {**OPTIONS, **overrides}
    path.write_text(yaml.safe_dump(rollout_config([ckpt], store, out, **options).model_dump(mode="json")))
    return path


def one_error_line(stderr: str) -> str:
    """The one ``error:`` line of a failed command (log lines above it are fine; a traceback,
    a second error or an ERROR log line is not)."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in stderr and " ERROR " not in stderr, stderr[-3000:]
    return errors[0]


def test_a_second_rollout_to_the_same_output_is_refused_while_the_first_runs(setup, tmp_path):
    out = tmp_path / "fc.zarr"
    first = forecast_cli("rollout", "--config", str(write_config(setup, "a.yaml", out)), "--seed", "7")
    wait_for_leads(first, partial_path(out), at_least=1)
    second = forecast_cli("rollout", "--config", str(write_config(setup, "a.yaml", out)), "--seed", "8")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 1, err[-2000:]
    assert "another `forecast rollout` is writing" in one_error_line(err) and str(out) in err
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    fc = open_forecast(out)
    assert is_complete(out) and fc.attrs["seed"] == 7 and np.isfinite(fc["gh"].values).all()
    assert not lock_path(out).exists()

    again = forecast_cli("rollout", "--config", str(write_config(setup, "a.yaml", out)), "--seed", "8",
                         "members=2", "lead=12h")
    _, err = again.communicate(timeout=120)
    assert again.returncode == 2
    line = one_error_line(err)
    assert 'lead: "1200h" -> "12h"' in line and "members: 3 -> 2" in line and "seed: 7 -> 8" in line
    assert "--overwrite" in line and open_forecast(out).attrs["seed"] == 7


def test_an_interrupted_rollout_is_not_resumed_with_other_parameters(setup, tmp_path):
    out = tmp_path / "fc.zarr"
    config = write_config(setup, "b.yaml", out)
    proc = forecast_cli("rollout", "--config", str(config))
    completed = wait_for_leads(proc, partial_path(out), at_least=2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert completed[0] < 1200 and not out.exists()
    other = forecast_cli("rollout", "--config", str(config), "--members", "2")
    _, err = other.communicate(timeout=120)
    assert other.returncode == 2
    assert "holds an interrupted rollout made with other parameters (members: 3 -> 2)" in one_error_line(err)
    assert partial_path(out).is_dir()
    replaced = forecast_cli("rollout", "--config", str(config), "--members", "2", "--overwrite")
    _, err = replaced.communicate(timeout=300)
    assert replaced.returncode == 0, err[-2000:]
    assert open_forecast(out).sizes["member"] == 2


def test_a_netcdf_temporary_is_never_marked_complete_and_stale_ones_are_removed(setup, tmp_path, monkeypatch):
    root, store, ckpt = setup
    out = tmp_path / "fc.nc"
    stale = tmp_path / f".tmp-{out.name}-0badc0de"   # as a run killed during the conversion leaves it
    stale.write_bytes(b"half a file")
    other = tmp_path / ".tmp-other.nc-0badc0de"     # another output's: not ours to remove
    other.write_bytes(b"")
    seen: list[int] = []
    to_netcdf = xr.Dataset.to_netcdf

    def spy(self, path, *args, **kwargs):
        result = to_netcdf(self, path, *args, **kwargs)
        with netCDF4.Dataset(path) as nc:   # the temporary, just written, before any rename
            seen.append(int(nc.getncattr("complete")))
        return result

    monkeypatch.setattr(xr.Dataset, "to_netcdf", spy)
    rollout(rollout_config([ckpt], store, out, **{**OPTIONS, "lead": "4h"}))
    assert seen == [0]
    assert is_complete(out) and not stale.exists() and other.exists()
    assert not list(tmp_path.glob(f".tmp-{out.name}-*"))


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write beyond the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


def test_a_write_that_the_file_system_refuses_is_one_line_without_traceback(setup, tmp_path):
    """A file-size limit stands in for a full disk (root ignores read-only permissions): the
    first chunk larger than 2 KiB fails to write, as a full disk's would."""
    out = tmp_path / "fc.zarr"
    proc = forecast_cli("rollout", "--config", str(write_config(setup, "c.yaml", out)), preexec_fn=_limit_file_size)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    line = one_error_line(err)
    assert "cannot write" in line and "File too large" in line and str(partial_path(out)) in line
    assert not out.exists()
