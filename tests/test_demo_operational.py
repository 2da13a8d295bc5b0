"""The main job end to end: `forecast demo --quick`, then `forecast run` on its outputs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from forecast.checkpoint import load_checkpoint
from forecast.config import RunConfig
from forecast.operational import RunLockedError, run, run_lock
from forecast.rollout.io import open_forecast
from forecast.verify.workflow import open_scores

pytestmark = pytest.mark.slow


def _forecast_cli(*args, **kwargs):
    env = {**os.environ, "FORECAST_PROGRESS": "0"}
    return subprocess.Popen([sys.executable, "-m", "forecast.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    proc = _forecast_cli("demo", "--quick", "--workdir", str(work), "--models", "sfno,sfno-crps,dyffusion",
                         "stochastic.models=2", "dyffusion.models=2", "conserve_global_mean=[gh]")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert f"demo outputs in {work}" in out
    return work


def test_demo_quick_writes_every_output(demo_dir):
    report = (demo_dir / "report.md").read_text()
    for model in ("sfno", "sfno-crps", "dyffusion", "perfect model"):
        assert f"| {model} | gh | 24 h |" in report
    assert "CRPS / perfect" in report and "power / truth's" in report and "test window" in report
    results = json.loads((demo_dir / "results.json").read_text())
    assert results["name"] == "demo" and results["machine"]["cores"] >= 1
    low, value, high = (results["figures"]["skill"]["sfno-crps"]["gh"]["24"]["crps_vs_perfect"][i] for i in (1, 0, 2))
    assert 0 < low <= value <= high
    for name in ("sfno-crps", "dyffusion"):   # spread from the model alone (dyffusion: no initial perturbation)
        stochastic = open_forecast(demo_dir / "forecasts" / f"{name}.zarr")["gh"]
        assert np.isfinite(stochastic.values).all()
        assert np.ptp(stochastic.isel(lead_time=-1).values, axis=0).max() > 0   # an ensemble, not one forecast
    # stochastic.models=2, dyffusion.models=2: two copies trained with their own seeds, the members spread over both
    for name in ("sfno-crps", "dyffusion"):
        used = json.loads(open_forecast(demo_dir / "forecasts" / f"{name}.zarr").attrs["provenance"])["checkpoints"]
        assert [Path(c["path"]).parts[-3] for c in used] == ["model0", "model1"]
        assert used[0]["sha256"] != used[1]["sha256"]
    # the demo's rollout settings reach every model's rollout; no limiter is on
    for name in ("sfno", "sfno-crps", "dyffusion"):
        rolled = json.loads(open_forecast(demo_dir / "forecasts" / f"{name}.zarr").attrs["provenance"])["config"]
        assert (rolled["spectral_cap"], rolled["conserve_global_mean"]) == (None, ["gh"])
    perfect = open_forecast(demo_dir / "forecasts" / "perfect_model.zarr")
    assert perfect.sizes["member"] == 4 and perfect.sizes["init_time"] == 2
    dyffusion = load_checkpoint(demo_dir / "runs" / "dyffusion" / "model1" / "checkpoints" / "latest.pt")
    assert dyffusion.epoch >= 1     # 1 of the 2 epochs each: epoch 0 trains the interpolator, 1 the forecaster
    fc = open_forecast(demo_dir / "forecasts" / "sfno.zarr")
    assert dict(fc.sizes) == {"member": 4, "init_time": 2, "lead_time": 5, "lat": 16, "lon": 32}
    assert np.isfinite(fc["gh"].values).all()
    with xr.open_dataset(demo_dir / "scores" / "sfno.nc") as scores:
        assert {"gh", "u", "v", "vo"} <= set(scores.data_vars)
    pngs = list((demo_dir / "plots").rglob("*.png"))
    assert len(pngs) >= 4
    assert json.loads((demo_dir / "timings.json").read_text())["total"] > 0


def _run_config(demo_dir: Path, out: Path, lead: str = "12h") -> RunConfig:
    store = str(demo_dir / "data" / "swe.zarr")
    ckpt = str(next((demo_dir / "runs" / "sfno" / "checkpoints").glob("latest.pt")))
    return RunConfig.model_validate({
        "out": str(out), "store": store,
        "rollout": {"checkpoints": [ckpt], "initial": store, "lead": lead, "members": 2, "seed": 3},
        "verify": {"truth": store}, "plot": {"formats": ["png"], "lead_times_hours": [6.0]}})


def test_run_twice_second_does_nothing(demo_dir, tmp_path):
    config = _run_config(demo_dir, tmp_path / "op")
    first = run(config, init="2020-01-03T00:00")
    forecast = Path(first.forecast)
    assert first.actions["rollout"] == "done"
    assert first.verified and Path(first.run_dir, "scores.nc").exists()
    assert first.skill["gh"]["rmse_6h"] > 0
    summary = json.loads(Path(first.run_dir, "summary.json").read_text())
    assert summary["init_time"].startswith("2020-01-03T00:00")
    stamp = forecast.stat().st_mtime_ns
    second = run(config, init="2020-01-03T00:00")
    assert second.actions["rollout"] == "skipped (complete)"
    assert second.actions["verify"] == "skipped"
    assert forecast.stat().st_mtime_ns == stamp


def test_concurrent_run_is_refused(demo_dir, tmp_path):
    config = _run_config(demo_dir, tmp_path / "op")
    run_dir = tmp_path / "op" / "2020-01-03T0000"
    with run_lock(run_dir, timeout_s=0):
        with pytest.raises(RunLockedError, match="holds the lock"):
            run(config, init="2020-01-03T00:00")
    assert not (run_dir / "forecast.zarr").exists()


def test_killed_run_resumes_to_the_same_output(demo_dir, tmp_path):
    import yaml

    reference = run(_run_config(demo_dir, tmp_path / "ref", lead="36h"), init="2020-01-02T12:00")
    config_path = tmp_path / "op.yaml"
    config_path.write_text(yaml.safe_dump(_run_config(demo_dir, tmp_path / "op", lead="36h").model_dump()))
    partial = tmp_path / "op" / "2020-01-02T1200" / "forecast.zarr.partial"
    proc = _forecast_cli("run", "--config", str(config_path), "--init", "2020-01-02T12:00")
    deadline = time.monotonic() + 120
    while not (partial / "progress.json").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert proc.poll() is None, "the run finished before it could be killed: nothing was interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert partial.is_dir() and not (partial.parent / "forecast.zarr").exists()
    resumed = _forecast_cli("run", "--config", str(config_path), "--init", "2020-01-02T12:00")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    a, b = open_forecast(reference.forecast), open_forecast(tmp_path / "op" / "2020-01-02T1200" / "forecast.zarr")
    for name in a.data_vars:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True)
    assert not partial.exists()


def test_bad_init_is_a_one_line_error(demo_dir, tmp_path):
    proc = _forecast_cli("run", "--config", "configs/operational.yaml", "--init", "yesterday",
                         f"store={demo_dir / 'data' / 'swe.zarr'}",
                         f"rollout.initial={demo_dir / 'data' / 'swe.zarr'}", f"out={tmp_path}",
                         cwd=Path(__file__).resolve().parents[1])
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert err.strip().startswith("error: --init 'yesterday'") and len(err.strip().splitlines()) == 1


def test_skill_notebook_runs_on_demo_outputs(demo_dir, monkeypatch):
    """notebooks/skill_analysis.ipynb executes top to bottom on the demo's outputs."""
    import nbformat
    from nbclient import NotebookClient

    notebook_dir = Path(__file__).resolve().parents[1] / "notebooks"
    nb = nbformat.read(notebook_dir / "skill_analysis.ipynb", as_version=4)
    monkeypatch.setenv("FORECAST_DEMO_DIR", str(demo_dir))
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(notebook_dir)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 6, "skill curves, scorecards, spread-skill, rank histograms, spectra and maps"
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "gh" in text and "CRPS / ens-mean MAE" in text
    assert list((demo_dir / "notebook_maps").glob("sfno_gh_*.png"))


def test_readme_operational_command_after_demo_exits_0_without_truth(demo_dir, tmp_path):
    """The README's sequence as written: `forecast demo`, then `forecast run --init latest` from the
    same directory, with the default config. The newest init time has no truth yet: the run
    writes the forecast and summary.json, scores and skill figures nothing, and exits 0."""
    (tmp_path / "demo").symlink_to(demo_dir)
    proc = _forecast_cli("run", "--init", "latest", "rollout.members=2", "rollout.lead=12h",
                         "plot.lead_times_hours=[6]", cwd=tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    run_dir = Path(out.split("run directory:")[1].splitlines()[0].strip())
    summary = json.loads((tmp_path / run_dir / "summary.json").read_text())
    assert summary["init_time"].startswith("2020-01-0") and summary["forecast"].endswith("forecast.zarr")
    assert summary["scores"] is None and summary["skill"] == {}
    assert not (tmp_path / run_dir / "scores.nc").exists()
    fc = open_forecast(tmp_path / run_dir / "forecast.zarr")
    assert pd.Timestamp(fc["init_time"].values[-1]) == pd.Timestamp(summary["init_time"])


def test_run_with_some_truth_scores_only_verifiable_leads(demo_dir, tmp_path):
    """An init time 6 h before the end of the store: lead 6 h has truth, 12 h not yet."""
    from pipelines.store import open_store

    last = open_store(demo_dir / "data" / "swe.zarr").times[-1]
    first = run(_run_config(demo_dir, tmp_path / "op"), init=(last - pd.Timedelta(hours=6)).isoformat())
    assert first.scores is not None and first.verified
    rmse = open_scores(first.scores)["gh"].sel(model="forecast", metric="rmse", region="global")
    hours = pd.TimedeltaIndex(rmse["lead_time"].values) / pd.Timedelta(hours=1)
    assert np.isfinite(rmse.values[hours == 6]).all() and np.isnan(rmse.values[hours == 12]).all()
    assert list(first.skill["gh"]) == ["rmse_0h", "rmse_6h"]
    again = run(_run_config(demo_dir, tmp_path / "op"), init=(last - pd.Timedelta(hours=6)).isoformat())
    assert again.actions["verify"] == "skipped" and again.scores == first.scores and again.skill == first.skill


def test_run_with_a_forecast_on_another_grid_maps_the_regridded_truth(demo_dir, tmp_path):
    """rollout.output_grid differs from the store's grid: verify and the maps both regrid the
    truth onto the forecast grid (one function), so the run ends with scores and maps, and a
    re-run is idempotent."""
    config = _run_config(demo_dir, tmp_path / "op", lead="6h")
    config = config.model_copy(update={"rollout": config.rollout.model_copy(update={"output_grid": "equiangular:9x18"})})
    first = run(config, init="2020-01-03T00:00")
    assert first.scores is not None and any(Path(p).name.startswith("map_gh_lead6h") for p in first.plots)
    again = run(config, init="2020-01-03T00:00")
    assert again.actions["rollout"] == "skipped (complete)" and sorted(again.plots) == sorted(first.plots)
