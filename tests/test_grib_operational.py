"""`forecast run` with configs/operational-grib.yaml: new GRIB analyses in a drop directory are
appended to the store before the rollout, earlier deliveries are left alone, re-runs do nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from grib_factories import write_grib
from rollout_factories import make_checkpoint

from forecast.config import RunConfig
from forecast.operational import run
from pipelines.config import PrepareConfig, load_config
from pipelines.prepare import prepare
from pipelines.store import open_store

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "operational-grib.yaml"
TIMES = pd.date_range("2020-03-20", periods=6, freq="6h")
ERA5 = ["z", "t", "t2m", "u10", "v10", "msl"]


def deliver(drop: Path, time: pd.Timestamp) -> None:
    """One analysis time as the open data ship it: one GRIB2 file, several level types."""
    write_grib(drop / f"an_{time:%Y%m%d%H}.grib2", "equiangular:19x36", [time], ERA5, levels=(500, 850))


def test_run_appends_new_grib_analyses_then_forecasts_from_the_newest(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    drop, store = tmp_path / "incoming", tmp_path / "store.zarr"
    for time in TIMES:
        deliver(drop, time)
    config = load_config(RunConfig, CONFIG, [
        f"out={tmp_path / 'op'}", f"store={store}", f"prepare.inputs=[{drop}]", f"prepare.out={store}",
        "prepare.grid=legendre-gauss:8x16", "prepare.scheduler=synchronous", "rollout.lead=12h",
        "rollout.members=2", "rollout.device=cpu", f"rollout.checkpoints=[{tmp_path / 'model.pt'}]",
        "verify.baselines=[persistence]", "plot.lead_times_hours=[6]"])
    prepare(PrepareConfig(**{**config.prepare.model_dump(), "climatology_smoothing_days": 1}))
    make_checkpoint(tmp_path / "model.pt", store)

    first = run(config)
    assert first.actions["prepare"] == "skipped (no new times)" and first.init_time == TIMES[-1].isoformat()

    new = TIMES[-1] + pd.Timedelta("6h")
    deliver(drop, new)
    (drop / ".an_next.grib2").write_bytes(b"GRIB still being written")   # hidden: not read yet
    second = run(config)
    assert second.actions["prepare"] == "1 new time(s) appended" and second.init_time == new.isoformat()
    assert open_store(store).times[-1] == new and open_store(store).times.size == TIMES.size + 1
    assert second.actions["rollout"] == "done" and first.run_dir in {str(Path(second.run_dir).parent / d)
                                                                       for d in second.verified}

    again = run(config)
    assert again.actions["prepare"] == "skipped (no new times)" and again.actions["rollout"] == "skipped (complete)"
    assert open_store(store).times.size == TIMES.size + 1
