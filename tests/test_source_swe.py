"""Shallow-water source: ERA5-convention files, conservation, determinism, bad input."""

import math

import netCDF4
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from pipelines.config import SWESourceConfig
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.sources.swe import SimulationError, generate_swe, simulate_swe
from pipelines.sources.swe import SWEParameters, build_solver, initial_condition

GRID = "legendre-gauss:16x32"
SMALL = dict(grid=GRID, days=2, output_step_hours=1, substep_seconds=900, spinup_days=0.25, seed=3,
             start="2021-03-04T00:00")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return generate_swe(SWESourceConfig(**SMALL), tmp_path_factory.mktemp("swe"))


def _simulate(**overrides):
    kw = dict(output_step_hours=1, substep_seconds=900, spinup_hours=6, seed=3, start="2021-03-04T00:00")
    kw.update(overrides)
    return simulate_swe(kw.pop("grid", GRID), kw.pop("n_steps", 4), **kw)


def test_one_file_per_day_opens_with_open_mfdataset(files):
    assert [p.name for p in files] == ["swe_20210304.nc", "swe_20210305.nc"]
    with xr.open_mfdataset(files) as ds:
        assert np.issubdtype(ds["time"].dtype, np.datetime64)
        expected = pd.date_range("2021-03-04", periods=48, freq="1h")
        np.testing.assert_array_equal(ds["time"].values, expected.values)
        for name, standard_name in [("gh", "geopotential_height"), ("u", "eastward_wind"),
                                    ("v", "northward_wind"), ("vo", "atmosphere_relative_vorticity")]:
            assert ds[name].dims == ("time", "latitude", "longitude")
            assert ds[name].attrs["standard_name"] == standard_name
            assert ds[name].attrs["units"] and ds[name].attrs["long_name"]
        assert ds["latitude"].values[0] > 0 > ds["latitude"].values[-1]
        assert np.all(np.diff(ds["latitude"].values) < 0)
        assert ds["longitude"].values[0] == 0 and np.all(np.diff(ds["longitude"].values) > 0)
        assert ds["longitude"].values[-1] < 360
        assert ds.attrs["Conventions"] == "CF-1.8"
        assert "seed=3" in ds.attrs["source"] and "ShallowWaterSolver" in ds.attrs["source"]
        assert "generate_swe" in ds.attrs["history"] and ds.attrs["title"]


def test_raw_encoding_is_cf(files):
    with netCDF4.Dataset(files[0]) as nc:
        time = nc["time"]
        assert time.units.startswith("hours since 1900-01-01")
        assert time.calendar == "proleptic_gregorian"
        assert time.dtype in (np.int32, np.float64)
        for coord in ("time", "latitude", "longitude"):
            assert "_FillValue" not in nc[coord].ncattrs()
        assert nc["latitude"].units == "degrees_north" and nc["longitude"].units == "degrees_east"


def test_grid_detected_from_files(files):
    with xr.open_mfdataset(files) as ds:
        assert Grid.from_coords(ds) == Grid.parse(GRID)
    equiangular = _simulate(grid="equiangular:17x32", n_steps=2)
    assert Grid.from_coords(equiangular) == Grid.parse("equiangular:17x32")


def test_global_mean_height_conserved_and_finite(files):
    area = Grid.parse(GRID).cell_area(radius=1.0)
    with xr.open_mfdataset(files) as ds:
        gh = ds["gh"].values.astype(np.float64)
        assert all(np.isfinite(ds[name].values).all() for name in ("gh", "u", "v", "vo"))
    means = (gh * area).sum(axis=(1, 2)) / area.sum()
    np.testing.assert_allclose(means, means[0], rtol=1e-6)
    assert means[0] == pytest.approx(10.0e3, rel=1e-6)  # balanced start: mean depth havg
    assert gh.std(axis=(1, 2)).min() > 1.0  # the flow is not trivially flat


def test_same_seed_identical_different_seed_different(files):
    a, b, c = _simulate(seed=3), _simulate(seed=3), _simulate(seed=4)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a["vo"].values, c["vo"].values)
    with xr.open_mfdataset(files) as ds:  # the day split does not change the trajectory
        np.testing.assert_array_equal(ds["gh"].values[:4], a["gh"].values)


def test_trajectory_independent_of_output_step():
    hourly = _simulate(n_steps=7, output_step_hours=1)
    two_hourly = _simulate(n_steps=4, output_step_hours=2)
    np.testing.assert_array_equal(hourly["u"].values[::2], two_hourly["u"].values)


def test_balanced_start_has_no_divergence_tendency():
    solver = build_solver(SWEParameters(Grid.parse(GRID)))
    with torch.inference_mode():
        balanced = solver.dudtspec(initial_condition(solver, seed=0, balanced=True))
        raw = solver.dudtspec(initial_condition(solver, seed=0, balanced=False))
    assert balanced[2].abs().max() < 1e-8 * raw[2].abs().max()
    assert balanced[1].abs().max() > 0.1 * raw[1].abs().max()  # the flow still evolves


def test_run_leaves_global_rng_and_threads_alone():
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    _simulate(n_steps=1)
    assert torch.equal(torch.get_rng_state(), state) and torch.get_num_threads() == threads


@pytest.mark.parametrize("bad, match", [
    (dict(days=0), "days"), (dict(days=-1), "days"), (dict(grid="hexagonal:16x32"), "grid"),
    (dict(grid="legendre-gauss:16"), "grid"), (dict(substep_seconds=700), "whole"),
    (dict(output_step_hours=0), "output_step_hours"), (dict(spinup_days=-1), "spinup"),
    (dict(wind_rms=0), "wind_rms"), (dict(start="someday"), "start"), (dict(days=0.3), "whole"),
    (dict(stirring={"degree": 40}), "stirring.*truncation"), (dict(stirring={"drag_days": 0}), "drag_days"),
    (dict(stirring={"width": -1}), "width"),
])
def test_bad_config_is_input_error(tmp_path, bad, match):
    """Limits are refused when the config is built (pydantic; a YAML file gives an InputError
    naming key and file) or by the generator (whole numbers of steps, start time)."""
    from pydantic import ValidationError

    with pytest.raises((InputError, ValidationError), match=match):
        generate_swe(SWESourceConfig(**{**SMALL, **bad}), tmp_path / "out")
    assert not list(tmp_path.glob("out/*.nc"))


def test_unstable_run_is_a_clear_error(tmp_path):
    config = SWESourceConfig(grid=GRID, days=3, output_step_hours=6, substep_seconds=6 * 3600, spinup_days=0)
    with pytest.raises(SimulationError, match="unstable.*substep_seconds"):
        generate_swe(config, tmp_path)
    assert issubclass(SimulationError, InputError)
    assert math.isfinite(SWEParameters(Grid.parse(GRID)).max_stable_substep())


def test_a_finer_solver_fills_every_degree_of_the_store_grid(tmp_path):
    """Solver on 48x96 with lmax 16, store on 16x32 (spectral regridding): the store has power at
    every degree its grid resolves; the solver at the store's own grid stops at ceil(16/3) = 6."""
    from forecast.verify.spectra import power_spectrum
    from pipelines.config import PrepareConfig
    from pipelines.prepare import prepare
    from pipelines.store import open_store

    def degrees_with_power(swe: dict, name: str) -> int:
        config = PrepareConfig(source="swe", swe=SWESourceConfig(days=0.5, spinup_days=0.25, **swe),
                               variables=["gh", "vo"], grid="legendre-gauss:16x32", method="spectral",
                               out=str(tmp_path / f"{name}.zarr"), scheduler="synchronous",
                               sources_dir=str(tmp_path / f"{name}.sources"))
        with pytest.warns(UserWarning, match="less than a year"):
            store = open_store(prepare(config))
        power = power_spectrum(store.data["vo"].isel(time=-1).load()).values
        return int(np.flatnonzero(power > 1e-6 * power.max())[-1])

    assert degrees_with_power({"grid": "legendre-gauss:48x96", "lmax": 16, "substep_seconds": 900}, "fine") >= 14
    assert degrees_with_power({"grid": "legendre-gauss:16x32", "substep_seconds": 1800}, "coarse") <= 6


# -- stochastic stirring -------------------------------------------------------------------
STIRRED_GRID = "legendre-gauss:24x48"  # lmax 8


def _upper_band_power(ds: xr.Dataset) -> np.ndarray:
    """Vorticity power in degrees 5-7 per time, from torch-harmonics' own transform."""
    from torch_harmonics import RealSHT

    coeffs = RealSHT(24, 48, grid="legendre-gauss").double()(torch.as_tensor(ds["vo"].values.astype(np.float64)))
    power = coeffs.abs() ** 2
    power[..., 1:] *= 2
    return power.sum(-1)[:, 5:8].sum(-1).numpy()


def test_stirring_keeps_the_flow_stationary_where_the_unforced_one_decays():
    """25 days, one output a day: the unforced flow loses ~98% of its small-scale power; the
    stirred one keeps it (mean of days 13-24 over days 1-8 near 1), as a climate should."""
    from pipelines.sources.swe import Stirring

    kw = dict(output_step_hours=24, substep_seconds=1200, seed=0)
    free = _upper_band_power(simulate_swe(STIRRED_GRID, 25, **kw))
    run = simulate_swe(STIRRED_GRID, 25, **kw, stirring=Stirring(degree=4, width=1, drag_days=4))
    stirred = _upper_band_power(run)
    assert free[13:].mean() / free[1:9].mean() < 0.2
    assert 0.4 < stirred[13:].mean() / stirred[1:9].mean() < 2.5
    assert stirred[13:].mean() > 50 * free[13:].mean()
    # the drag holds the energy too (without it the mean square wind grows 3.5-fold here)
    wind2 = (run["u"].values.astype(np.float64) ** 2 + run["v"].values ** 2).mean((1, 2))
    assert wind2[13:].mean() / wind2[1:9].mean() < 2.2


def test_stirring_has_its_rms_and_correlation_time():
    """Many draws: area-mean square of F (numpy's Gauss-Legendre weights) = rms^2, and the
    lag-one correlation of the AR(1) = exp(-dt / tau_F), its variance kept as it advances."""
    from pipelines.sources.shallow_water import Stirring, StirringForce

    params = SWEParameters(Grid.parse(STIRRED_GRID), substep_seconds=1200)
    solver = build_solver(params)
    stirring = Stirring(rms=2e-10, degree=4, width=1, correlation_hours=1.0)
    force = StirringForce(solver, stirring, seed=0)
    weights = np.polynomial.legendre.leggauss(24)[1] / 2  # sum to 1 over latitude

    def mean_square(f: torch.Tensor) -> float:
        return float(weights @ (solver.spec2grid(f).numpy() ** 2).mean(-1))

    fields, products = [], []
    for _ in range(600):
        previous = force.force.clone()
        force.advance()
        fields.append(mean_square(force.force))
        products.append(float(weights @ (solver.spec2grid(previous).numpy() * solver.spec2grid(force.force).numpy()).mean(-1)))
    assert np.mean(fields) / stirring.rms**2 == pytest.approx(1.0, abs=0.08)
    assert np.mean(products) / np.mean(fields) == pytest.approx(math.exp(-1200 / 3600), abs=0.06)
    other, first = StirringForce(solver, stirring, seed=1).force, StirringForce(solver, stirring, seed=0).force
    assert (other - first).abs().max() > 0.1 * first.abs().max()


def test_stirring_advances_once_per_substep_of_the_solver():
    from pipelines.sources.shallow_water import AdamsBashforth3, Stirring, StirringForce

    solver = build_solver(SWEParameters(Grid.parse(STIRRED_GRID), substep_seconds=1200))
    stirring = Stirring(degree=4, width=1)
    with torch.inference_mode():
        stepper = AdamsBashforth3(solver, initial_condition(solver, seed=0), StirringForce(solver, stirring, seed=5))
        stepper.step(5)
        reference = StirringForce(solver, stirring, seed=5)
        for _ in range(5):
            reference.advance()
    assert torch.equal(stepper.stirring.force, reference.force)


def test_stirred_run_is_seeded_conserves_mass_and_starts_where_the_free_run_does():
    from pipelines.sources.swe import Stirring

    stirring = Stirring(degree=4, width=1)
    kw = dict(grid=STIRRED_GRID, n_steps=3, output_step_hours=12, substep_seconds=1200, spinup_hours=0)
    a, b, c = _simulate(**kw, stirring=stirring), _simulate(**kw, stirring=stirring), _simulate(**kw, seed=4, stirring=stirring)
    free = _simulate(**kw)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a["vo"].values[-1], c["vo"].values[-1])
    np.testing.assert_array_equal(a["gh"].values[0], free["gh"].values[0])  # its own random stream
    assert not np.allclose(a["vo"].values[-1], free["vo"].values[-1])
    weights = np.polynomial.legendre.leggauss(24)[1] / 2
    means = weights @ a["gh"].values.astype(np.float64).mean(-1).T
    np.testing.assert_allclose(means, means[0], rtol=1e-6)
    assert "stirring" in a.attrs["source"]


def test_stirring_from_the_config_reaches_the_solver(tmp_path):
    config = dict(SMALL, days=1, spinup_days=0)
    free = generate_swe(SWESourceConfig(**config), tmp_path / "free")
    stirred = generate_swe(SWESourceConfig(**config, stirring={"degree": 3, "width": 1, "rms": 3e-10}), tmp_path / "stirred")
    with xr.open_dataset(free[-1]) as a, xr.open_dataset(stirred[-1]) as b:
        assert "stirring=" in b.attrs["source"] and "'degree': 3" in b.attrs["source"]
        np.testing.assert_array_equal(a["vo"].values[0], b["vo"].values[0])  # same start
        assert np.abs(a["vo"].values[-1] - b["vo"].values[-1]).max() > 0.01 * np.abs(a["vo"].values[-1]).max()
