"""Faults leave no debris, and finalise is honest.

Real processes of the ``forecast`` command line are killed with SIGKILL at a chosen point
(a function of the run replaced by one that kills its own process: the run stops exactly
there, as ``kill -9`` would stop it); a re-run of the same command removes what the killed
one left and ends with a complete output. A NetCDF conversion refused by the file system
(a file-size limit, as a full disk would) keeps the complete lead times where the message
says, and a re-run finishes the forecast.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cf_check import cf_failures
from factories import write_era5_like
from rollout_factories import make_checkpoint, make_swe_store

from forecast.cli import main
from forecast.rollout.io import is_complete, open_forecast, partial_path
from pipelines.grids import Grid
from pipelines.store import open_store

REPO = Path(__file__).resolve().parents[1]
TIMES = pd.date_range("2020-01-01", periods=4, freq="6h")

# runs the command line with MODULE.NAME replaced by a function that SIGKILLs the process,
# before or after calling the original
KILLED_AT = """
import importlib, os, signal, sys
module, name, when = sys.argv[1:4]
target = importlib.import_module(module)
original = getattr(target, name)

def killed(*args, **kwargs):
    if when == "after":
        original(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)

setattr(target, name, killed)
from forecast.cli import main
sys.exit(main(sys.argv[4:]))
"""


def killed_at(module: str, name: str, when: str, *args: str, preexec_fn=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FORECAST_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", KILLED_AT, module, name, when, *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=preexec_fn)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith((".tmp-", ".old-"))
                  or p.name.endswith((".partial", ".lock")))


def prepare_args(src: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", "--input", str(src), "--variables", "t2m", "--grid", "legendre-gauss:8x16", "--out", str(out),
            "scheduler=synchronous", *extra]


@pytest.mark.filterwarnings("ignore:the climatology comes from")
def test_killed_prepare_and_append_leave_no_temporaries_after_a_re_run(tmp_path):
    write_era5_like(tmp_path / "src", Grid.parse("equiangular:19x36"), TIMES, ["t2m"])
    write_era5_like(tmp_path / "new", Grid.parse("equiangular:19x36"), TIMES + pd.Timedelta("1D"), ["t2m"])
    out = tmp_path / "store.zarr"
    # killed after pass 1 wrote the temporary store, before its statistics
    proc = killed_at("pipelines.prepare", "_statistics_pass", "before", *prepare_args(tmp_path / "src", out))
    assert proc.returncode == -signal.SIGKILL and leftovers(tmp_path) != [] and not out.exists(), proc.stderr[-2000:]
    assert main(prepare_args(tmp_path / "src", out)) == 0
    assert leftovers(tmp_path) == [] and open_store(out).times.size == 4
    # an append killed after writing its linked copy, before the rename
    proc = killed_at("pipelines.prepare", "consolidate", "before", *prepare_args(tmp_path / "new", out, "--append"))
    assert proc.returncode == -signal.SIGKILL and any(n.startswith(".tmp-") for n in leftovers(tmp_path))
    assert open_store(out).times.size == 4   # the store itself is untouched
    assert main(prepare_args(tmp_path / "new", out, "--append")) == 0
    assert leftovers(tmp_path) == [] and open_store(out).times.size == 8


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("debris")
    store = make_swe_store(root / "store.zarr", n_times=24)
    return store, make_checkpoint(root / "model.pt", store)


def rollout_args(model: tuple[Path, Path], out: Path) -> list[str]:
    store, ckpt = model
    return ["rollout", "--checkpoint", str(ckpt), "--initial", str(store), "--init", "2020-03-20T02", "--lead", "4h",
            "--members", "1", "--perturbation", "none", "--out", str(out)]


def test_a_netcdf_rollout_killed_after_its_rename_leaves_no_partial_after_a_re_run(model, tmp_path):
    out = tmp_path / "fc.nc"
    proc = killed_at("forecast.rollout.io", "_to_netcdf", "after", *rollout_args(model, out))
    assert proc.returncode == -signal.SIGKILL and is_complete(out) and partial_path(out).is_dir(), proc.stderr[-2000:]
    before = open_forecast(out)["gh"].values
    assert main(rollout_args(model, out)) == 0
    assert leftovers(tmp_path) == [] and is_complete(out)
    np.testing.assert_array_equal(open_forecast(out)["gh"].values, before)


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a write beyond the limit fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))


def test_a_failed_finalise_keeps_the_lead_times_where_it_says_and_a_re_run_finishes(model, tmp_path):
    """The chunks (2 KiB) and unit states (9 KiB) fit under a 16 KiB file-size limit; the NetCDF
    file (5 lead times x 4 variables) does not, so the run fails while finalising."""
    out = tmp_path / "fc.nc"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FORECAST_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "forecast.cli", *rollout_args(model, out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 1 and len(errors) == 1, proc.stderr[-2000:]
    assert f"cannot write {out}: the NetCDF library failed to write it" in errors[0]
    assert f"the complete lead times are kept in {partial_path(out)} for a re-run" in errors[0]
    assert not out.exists() and (partial_path(out) / "progress.json").exists()
    assert open_forecast(partial_path(out))["gh"].notnull().all()   # every lead time is there
    assert main(rollout_args(model, out)) == 0
    assert leftovers(tmp_path) == [] and is_complete(out)
    assert cf_failures(out, tmp_path, ("high_priorities", "medium_priorities", "low_priorities")) == []
