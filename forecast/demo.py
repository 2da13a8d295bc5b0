"""``forecast demo``: the whole chain on the embedded shallow-water data.

    stirred shallow-water solver -> ERA5-convention NetCDF -> pipeline -> Zarr store
      -> SFNO (AFNO, DYffusion) training -> 16-member ensembles from the test window's init times
      -> the perfect-model ensemble (the solver itself, stirring unknown) from the same init times
      -> verification against the solver's truth, persistence, climatology and the perfect model
      -> plots + report

Each stage calls the same public function as its own command (``prepare``, ``train``,
``rollout``, ``perfect-model``, ``verify``, ``plot``), so the demo exercises exactly what
users run. The record is cut into training, validation and test windows
(:mod:`forecast.windows`): statistics, climatology and training use the training window,
validation scores the training, and the forecasts are verified on the test window only.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from forecast.config import DEMO_VARIABLES, DemoConfig, ModelConfig, RolloutConfig, TrainConfig, VerifyConfig
from forecast.windows import WindowSplit, split_windows
from pipelines.store import open_store
from pipelines.atomic import remove_path
from pipelines.config import PrepareConfig

log = logging.getLogger(__name__)

VARIABLES = list(DEMO_VARIABLES)
STAGE_DIRS = ("sources", "data", "runs", "forecasts", "scores", "plots")
DATA_DIRS = ("sources", "data")     # what ``demo(data_dir=...)`` keeps and reuses
DATA_KEYS = ("swe", "variables", "grid", "method", "statistics_end")   # what makes the store

# `--quick`: the same chain on a tiny grid and a short simulation (a check of the chain, not of its skill).
QUICK_OVERRIDES: dict = {
    "swe": {"grid": "legendre-gauss:24x48", "lmax": 16, "substep_seconds": 900.0, "days": 5.0, "spinup_days": 1.0,
            "output_step_hours": 1.0},
    "grid": "legendre-gauss:16x32",
    "windows": {"inits": 2, "init_every_hours": 6.0, "lead_hours": 24.0},
    "members": 4,
    "train": {"epochs": 2, "max_steps": 30, "batch_size": 4, "step_hours": 6, "rollout_steps": 1,
              "curriculum_epochs": 0, "checkpoint_every": 1000, "warmup_steps": 5, "tensorboard": False},
    "sfno": {"embed_dim": 16, "num_layers": 2, "scale_factor": 1},
    "afno": {"embed_dim": 32, "num_layers": 2, "patch_size": [4, 4], "num_blocks": 4},
    "stochastic": {"rollout_steps": 2},   # the 5-day record has too few 4-step training windows
    "plot": {"lead_times_hours": [24.0]},
}


@dataclass
class DemoResult:
    """Where the demo's outputs are, its timings (s) and headline skill."""

    workdir: Path
    store: Path
    checkpoints: dict[str, list[Path]] = field(default_factory=dict)   # several: a multi-model ensemble
    forecasts: dict[str, Path] = field(default_factory=dict)
    scores: dict[str, Path] = field(default_factory=dict)
    perfect_model: Path | None = None
    windows: WindowSplit | None = None
    window: str = "test"              # the scored window
    report: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)


def quick_config(config: DemoConfig) -> DemoConfig:
    """``config`` with :data:`QUICK_OVERRIDES` merged in (nested sections merge key by key)."""
    data = config.model_dump()
    for key, value in QUICK_OVERRIDES.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return DemoConfig.model_validate(data)


def _train_config(config: DemoConfig, arch: str, store: Path, work: Path, windows: WindowSplit) -> TrainConfig:
    model = config.afno if arch == "afno" else config.sfno
    ensemble: dict = {}
    if arch == "sfno-crps":
        model = ModelConfig.model_validate({**model.model_dump(), "noise_channels": config.stochastic.noise_channels,
                                            "noise_length_scales_km": config.stochastic.noise_length_scales_km,
                                            "noise_autocorrelation": config.stochastic.noise_autocorrelation})
        ensemble = {"loss": "crps", "ensemble_members": config.stochastic.ensemble_members,
                    "crps_alpha": config.stochastic.crps_alpha,
                    "crps_spectral_weight": config.stochastic.spectral_weight,
                    "crps_spectral_normalised": config.stochastic.spectral_normalised,
                    "rollout_steps": config.stochastic.rollout_steps}
    if arch == "dyffusion":
        # the sfno section's hyperdiffusion filters an SFNO's step; DYffusion's networks predict states
        model = model.model_copy(update={"architecture": "dyffusion", "mlp_dropout": config.dyffusion.mlp_dropout,
                                         "drop_path_rate": config.dyffusion.drop_path_rate,
                                         "hyperdiffusion_efold_hours": None})
        ensemble = {"rollout_steps": 1, "forecaster_epochs": config.dyffusion.forecaster_epochs,
                    "input_noise": config.dyffusion.input_noise}
    return config.train.model_copy(update={
        "store": str(store), "out": str(work / "runs" / arch), "model": model,
        "train_end": windows.train.end.isoformat(), "val_start": windows.validation.start.isoformat(),
        "val_end": windows.validation.end.isoformat(), "seed": config.seed, **ensemble})


def _train_configs(config: DemoConfig, arch: str, store: Path, work: Path,
                   windows: WindowSplit) -> list[TrainConfig]:
    """One training run per model of ``arch``'s ensemble: ``stochastic.models`` copies of the
    stochastic SFNO (``dyffusion.models`` of DYffusion) with consecutive seeds, sharing
    ``train.epochs`` (and DYffusion's ``forecaster_epochs``) between them."""
    single = _train_config(config, arch, store, work, windows)
    copies = {"sfno-crps": config.stochastic.models, "dyffusion": config.dyffusion.models}.get(arch, 1)
    if copies == 1:
        return [single]
    epochs = max(1, single.epochs // copies)
    forecaster_epochs = None if single.forecaster_epochs is None else max(1, single.forecaster_epochs // copies)
    return [single.model_copy(update={"out": str(Path(single.out) / f"model{k}"), "seed": single.seed + k,
                                      "epochs": epochs, "forecaster_epochs": forecaster_epochs})
            for k in range(copies)]


def _model_rollout(config: DemoConfig, arch: str) -> dict:
    """The initial perturbations of one kind of model (a probabilistic model's own section's);
    the rest of the rollout is the same for every model."""
    sections = {"sfno-crps": config.stochastic.perturbation, "dyffusion": config.dyffusion.perturbation}
    return dict(perturbation=sections.get(arch, config.perturbation))


def _training_end(config: DemoConfig) -> pd.Timestamp:
    """The last time of the training window, from the config alone (statistics and climatology
    are computed before the store exists): the record starts at ``swe.start``."""
    start = pd.Timestamp(config.swe.start)
    times = pd.date_range(start, periods=int(round(config.swe.days * 24 / config.swe.output_step_hours)),
                          freq=pd.Timedelta(hours=config.swe.output_step_hours))
    return demo_windows(times, config).train.end


def demo_windows(times: pd.DatetimeIndex, config: DemoConfig) -> WindowSplit:
    """The training, validation and test windows of the demo's record."""
    w = config.windows
    return split_windows(times, w.inits, w.init_every_hours, w.lead_hours)


def _output_leads(config: DemoConfig) -> pd.TimedeltaIndex:
    """The written lead times: every model step up to ``windows.lead_hours``."""
    step = config.train.step_hours or config.swe.output_step_hours
    return pd.TimedeltaIndex([pd.Timedelta(hours=k * step) for k in range(int(config.windows.lead_hours // step) + 1)])


def _stage(name: str, timings: dict[str, float]):
    class _Timer:
        def __enter__(self):
            log.info("demo: %s ...", name)
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = round(time.perf_counter() - self.t0, 2)
            if exc[0] is None:
                log.info("demo: %s done in %.1f s", name, timings[name])

    return _Timer()


def demo(config: DemoConfig, quick: bool = False, window: Literal["test", "validation"] = "test",
         data_dir: str | Path | None = None) -> DemoResult:
    """Run the whole chain in ``config.workdir`` (earlier demo outputs there are replaced).

    ``window`` is where the forecasts are scored: the test window (the demo's report) or the
    validation window (where settings are chosen: ``benchmarks/skill.py``). ``data_dir`` keeps
    the data (sources, store, perfect-model ensembles) in a directory of their own and reuses
    them while the config asks for the same data, so that many settings are compared on one record.
    """
    from forecast.report import write_report
    from forecast.rollout import rollout
    from forecast.train import train
    from forecast.verify.workflow import verify

    config = quick_config(config) if quick else config
    work = Path(config.workdir).resolve()
    data = Path(data_dir).resolve() if data_dir is not None else work
    for name in STAGE_DIRS:
        if data_dir is None or name not in DATA_DIRS:
            remove_path(work / name)
    work.mkdir(parents=True, exist_ok=True)
    result = DemoResult(workdir=work, store=data / "data" / "swe.zarr", window=window)
    t_start = time.perf_counter()

    with _stage("prepare", result.timings):
        _prepare_data(config, result.store, data, reuse=data_dir is not None)
    result.windows = demo_windows(open_store(result.store).times, config)
    inits = list(getattr(result.windows, window).inits)
    if config.perfect_model:
        with _stage("perfect model", result.timings):
            result.perfect_model = _perfect_model(config, result.store, inits, data, window, reuse=data_dir is not None)
    for arch in config.models:
        with _stage(f"train {arch}", result.timings):
            result.checkpoints[arch] = [train(c).saved_checkpoint()
                                        for c in _train_configs(config, arch, result.store, work, result.windows)]
        with _stage(f"rollout {arch}", result.timings):
            result.forecasts[arch] = rollout(RolloutConfig(
                checkpoints=[str(c) for c in result.checkpoints[arch]], initial=str(result.store),
                init_times=[t.isoformat() for t in inits], lead=f"{config.windows.lead_hours:g}h",
                members=config.members, conserve_global_mean=config.conserve_global_mean,
                seed=config.seed, out=str(work / "forecasts" / f"{arch}.zarr"), **_model_rollout(config, arch)))
        with _stage(f"verify {arch}", result.timings):
            result.scores[arch] = verify(VerifyConfig(
                forecast=str(result.forecasts[arch]), truth=str(result.store), out=str(work / "scores" / f"{arch}.nc"),
                perfect_model=str(result.perfect_model) if result.perfect_model else None))
    with _stage("plots and report", result.timings):
        result.report = write_report(result, config)
    result.timings["total"] = round(time.perf_counter() - t_start, 2)
    (work / "timings.json").write_text(json.dumps(result.timings, indent=2))
    return result


def _prepare_config(config: DemoConfig, store: Path, data: Path) -> PrepareConfig:
    return PrepareConfig(source="swe", swe=config.swe, variables=VARIABLES, grid=config.grid, method=config.method,
                         out=str(store), sources_dir=str(data / "sources"),
                         statistics_end=_training_end(config).isoformat())


def _prepare_data(config: DemoConfig, store: Path, data: Path, reuse: bool) -> None:
    """The store; kept when ``reuse`` and it was prepared with the same settings."""
    from pipelines.prepare import prepare

    wanted = _prepare_config(config, store, data)
    if reuse and store.exists():
        made = open_store(store).provenance().get("config") or {}
        same = {k: made.get(k) for k in DATA_KEYS} == {k: v for k, v in wanted.model_dump(mode="json").items()
                                                        if k in DATA_KEYS}
        if same:
            log.info("demo: reusing the store %s (prepared with the same settings)", store)
            return
    prepare(wanted.model_copy(update={"overwrite": True}), command="forecast demo")


def _perfect_model(config: DemoConfig, store: Path, inits: list[pd.Timestamp], data: Path, window: str,
                   reuse: bool) -> Path:
    from forecast.forecast_file import is_complete
    from forecast.verify.perfect_model import perfect_model_forecast

    name = f"perfect_model_{window}_m{config.members}_s{config.seed}.zarr" if reuse else "perfect_model.zarr"
    out = data / "forecasts" / name
    if reuse and is_complete(out):
        return out
    return perfect_model_forecast(store, inits, _output_leads(config), config.members, out, seed=config.seed,
                                  overwrite=True)
