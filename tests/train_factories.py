"""Small training stores for the training tests, made with torch-harmonics' shallow-water solver.

``make_swe_store`` integrates the pipeline's shallow-water source
(:mod:`pipelines.sources.swe`, torch-harmonics' solver from a balanced random initial
condition) on a tiny grid and writes the states with
:func:`pipelines.store.write_store`, with the statistics the pipeline would compute
(area-weighted mean and standard deviation, standard deviation of one-step tendencies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.config import ModelConfig, TrainConfig
from pipelines.grids import Grid
from pipelines.sources.swe import simulate_swe as simulate_source
from pipelines.store import write_store

VARIABLES = ["gh", "u", "v", "vo"]


def simulate_swe(grid: Grid, n_times: int, step_hours: float = 1.0, substep_seconds: float | None = None,
                 seed: int = 0, spinup_steps: int = 6) -> np.ndarray:
    """States ``(n_times, 4, nlat, nlon)`` float32: gh (m), u, v (m s-1), vo (s-1), from the
    pipeline's own shallow-water source (:func:`pipelines.sources.swe.simulate_swe`).

    ``substep_seconds`` defaults to 1800 s on grids of up to 16 latitudes (stable there and
    4x cheaper) and to the source's 450 s on finer ones.
    """
    substep_seconds = substep_seconds or (1800.0 if grid.nlat <= 16 else 450.0)
    ds = simulate_source(grid, n_times, output_step_hours=step_hours, substep_seconds=substep_seconds,
                         spinup_hours=spinup_steps * step_hours, seed=seed)
    assert np.allclose(ds["latitude"].values, grid.lat), "the source writes latitudes north to south, as the grid"
    return np.stack([ds[v].values for v in VARIABLES], axis=1).astype(np.float32)


def store_statistics(states: np.ndarray, grid: Grid, variables: list[str]) -> xr.Dataset:
    """Area-weighted mean, std and one-step tendency std per variable, dims ``(variable,)``."""
    w = grid.latitude_weights[None, :, None]
    x = states.astype(np.float64)
    mean = np.array([(x[:, c] * w).mean() for c in range(x.shape[1])])
    std = np.array([np.sqrt((((x[:, c] - mean[c]) ** 2) * w).mean()) for c in range(x.shape[1])])
    dx = np.diff(x, axis=0)
    tendency = np.array([np.sqrt(((dx[:, c] ** 2) * w).mean()) for c in range(x.shape[1])])
    return xr.Dataset({"mean": ("variable", mean), "std": ("variable", std), "tendency_std": ("variable", tendency),
                       "n_samples": ((), np.int64(x.shape[0]))}, coords={"variable": variables})


def static_fields(grid: Grid) -> xr.Dataset:
    """A synthetic land-sea mask and orography (m)."""
    lat, lon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    lsm = ((np.sin(np.deg2rad(2 * lon)) + np.cos(np.deg2rad(lat))) > 0.8).astype(np.float32)
    orography = (2000.0 * lsm * np.cos(np.deg2rad(lat)) ** 2).astype(np.float32)
    return xr.Dataset({"lsm": (("lat", "lon"), lsm), "z_surface": (("lat", "lon"), orography)}, coords=grid.coords())


def make_swe_store(path: str | Path, grid: str = "legendre-gauss:16x32", n_times: int = 48, step_hours: float = 1.0,
                   seed: int = 0, with_static: bool = False, start: str = "2020-03-20T00:00") -> Path:
    """Write a shallow-water training store and return its path."""
    g = Grid.parse(grid)
    states = simulate_swe(g, n_times, step_hours=step_hours, seed=seed)
    times = pd.date_range(start, periods=n_times, freq=pd.Timedelta(hours=step_hours))
    data = xr.Dataset({v: (("time", "lat", "lon"), states[:, i]) for i, v in enumerate(VARIABLES)},
                      coords={"time": times, **g.coords()},
                      attrs={"grid": str(g), "variables": VARIABLES, "time_step_seconds": step_hours * 3600.0})
    static = static_fields(g) if with_static else None
    return write_store(path, data, store_statistics(states, g, VARIABLES), static=static)


def tiny_train_config(store: Path, out: Path, architecture: str = "sfno", **overrides) -> TrainConfig:
    """A training config small enough for a test: tiny model, no TensorBoard, CPU."""
    model = {"sfno": dict(architecture="sfno", embed_dim=16, num_layers=2, scale_factor=1),
             "afno": dict(architecture="afno", embed_dim=16, num_layers=2, patch_size=[4, 4], num_blocks=4)}[architecture]
    model.update(overrides.pop("model", {}))
    values = dict(store=str(store), out=str(out), model=ModelConfig(**model), batch_size=4, epochs=2, lr=2e-3,
                  warmup_steps=2, val_fraction=0.2, checkpoint_every=1000, tensorboard=False, device="cpu")
    values.update(overrides)
    return TrainConfig(**values)


_CACHE: dict[tuple, Path] = {}


def cached_swe_store(**kwargs) -> Path:
    """:func:`make_swe_store` once per test session and set of arguments (stores are read-only in tests)."""
    import atexit
    import shutil
    import tempfile

    key = tuple(sorted(kwargs.items()))
    if key not in _CACHE:
        directory = tempfile.mkdtemp(prefix="swe-store-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        _CACHE[key] = make_swe_store(Path(directory) / "store.zarr", **kwargs)
    return _CACHE[key]
