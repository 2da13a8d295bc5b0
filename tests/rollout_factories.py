"""Small checkpoints and rollout configs for the rollout tests (no training needed).

``make_checkpoint`` builds a tiny untrained model with :func:`forecast.models.build_model`
and saves it with :func:`forecast.checkpoint.save_checkpoint`, with the statistics of a
shallow-water store made by :func:`train_factories.make_swe_store`.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from forecast.checkpoint import Checkpoint, save_checkpoint
from forecast.config import ModelConfig, PerturbationConfig, RolloutConfig
from forecast.forcings import forcing_names
from forecast.models import build_model
from forecast.rollout.io import completed_leads
from pipelines.grids import Grid
from pipelines.store import open_store
from train_factories import VARIABLES, make_swe_store

TINY_MODEL = ModelConfig(architecture="sfno", embed_dim=8, num_layers=1, scale_factor=1)

__all__ = ["make_swe_store", "make_checkpoint", "rollout_config", "wait_for_leads", "single_thread_rollout",
           "write_rollout_config", "interrupt_rollout", "VARIABLES", "TINY_MODEL"]


def make_checkpoint(path: str | Path, store: str | Path, seed: int = 0, model: ModelConfig = TINY_MODEL,
                    grid: str | None = None, variables: list[str] | None = None, poison: bool = False,
                    weight_scale: float = 1.0, noise_weight: float = 0.0, horizon: int = 1,
                    power_spectrum: np.ndarray | None = None) -> Path:
    """Save an untrained model for ``store``'s grid, variables and statistics.

    ``grid``/``variables`` override the store's (to make a mismatching checkpoint);
    ``poison`` fills the weights with NaN, so the first step produces NaN; ``noise_weight``
gives a stochastic model's (zero-initialised) noise modulations random weights; ``weight_scale``
    multiplies every weight (an untrained residual model grows exponentially: 0.3 makes it
    grow about 3x per 20 steps instead of 1e4x); ``horizon`` is the model step in store steps
    (a DYffusion model's interpolated states per step); ``power_spectrum`` is the training
    spectrum the checkpoint carries (``(C, L)``, for the rollout's ``spectral_cap``).
    """
    opened = open_store(store)
    g = Grid.parse(grid) if grid else opened.grid
    names = variables or opened.variables
    stats = opened.statistics.sel(variable=names) if set(names) <= set(opened.variables) else None
    mean = stats["mean"].values if stats is not None else np.zeros(len(names))
    std = stats["std"].values if stats is not None else np.ones(len(names))
    torch.manual_seed(seed)
    net = build_model(model, g, len(names), len(forcing_names([])))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(float("nan")) if poison else p.mul_(weight_scale)
        for name, p in net.named_parameters():
            if ".noise." in name and noise_weight:   # a stochastic model "trained" to use its noise
                p.normal_(0.0, noise_weight)
    if model.architecture == "dyffusion":
        net.set_horizon(horizon)
    ckpt = Checkpoint(model_config=model, train_config={}, grid=g, variables=list(names), static_names=[],
                      static=None, mean=np.asarray(mean, np.float64), std=np.asarray(std, np.float64),
                      time_step_seconds=horizon * opened.time_step.total_seconds(), step=0, epoch=0,
                      model_state=net.state_dict(), power_spectrum=power_spectrum)
    return save_checkpoint(path, ckpt)


def rollout_config(checkpoints: list[Path], store: Path, out: Path, **overrides) -> RolloutConfig:
    """A small rollout: 3 members, one init time, 4 h lead, spherical-Gaussian perturbations, CPU."""
    values = dict(checkpoints=[str(c) for c in checkpoints], initial=str(store), init_times=["2020-03-20T06"],
                  lead="4h", members=3, perturbation=PerturbationConfig(kind=["spherical-gaussian"], amplitude=0.05,
                                                                        length_scale_km=2000.0),
                  seed=1, out=str(out), device="cpu")
    values.update(overrides)
    return RolloutConfig(**values)


def wait_for_leads(proc: subprocess.Popen, partial: Path, at_least: int, timeout: float = 120.0) -> list[int]:
    """Poll the partial output until init time 0 has ``at_least`` complete lead times."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read()
            raise AssertionError(f"rollout ended before it could be killed: {(err.decode() if isinstance(err, bytes) else err)[-2000:]}")
        completed = completed_leads(partial) or [-1]
        if completed[0] >= at_least:
            return completed
        time.sleep(0.005)
    raise AssertionError("rollout made no progress")


def interrupt_rollout(config: RolloutConfig, monkeypatch, at_call: int = 3) -> None:
    """Run ``config`` with the engine's ``at_call``-th step raising, as a killed run stops, and
    check that it left a partial output to resume."""
    import pytest

    from forecast.rollout import rollout
    from forecast.rollout.engine import RolloutEngine
    from forecast.rollout.io import partial_path

    step, calls = RolloutEngine.step, {"n": 0}

    def failing_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_call:
            raise RuntimeError("killed")
        return step(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(RolloutEngine, "step", failing_step)
        with pytest.raises(RuntimeError, match="killed"):
            rollout(config)
    assert partial_path(config.out).is_dir()


def single_thread_rollout(checkpoints: list[Path], store: Path, out: Path, **options) -> Path:
    """A rollout with one torch thread, as the subprocesses of the kill-and-resume tests run
    (bit-identity holds for one thread count)."""
    from forecast.rollout import rollout

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return rollout(rollout_config(checkpoints, store, out, **options))
    finally:
        torch.set_num_threads(threads)


def write_rollout_config(path: Path, checkpoints: list[Path], store: Path, out: Path, **options) -> Path:
    """The rollout config as a YAML file, for ``forecast rollout --config`` in a subprocess."""
    import yaml

    path.write_text(yaml.safe_dump(rollout_config(checkpoints, store, out, **options).model_dump(mode="json")))
    return path
