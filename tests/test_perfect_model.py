"""The perfect-model baseline: the solver's batched tendency, the ensemble, the forecast file, its scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from forecast.config import VerifyConfig
from forecast.forecast_file import open_forecast
from forecast.verify.perfect_model import perfect_model_forecast
from forecast.verify.scores_file import open_scores
from forecast.verify.workflow import verify
from pipelines.config import PrepareConfig, StirringConfig, SWESourceConfig
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.prepare import prepare
from pipelines.regrid import make_regridder
from pipelines.sources.shallow_water import Stirring, StirringForce, SWEParameters, build_solver, initial_condition
from pipelines.sources.swe_ensemble import SpectralState, ensemble_states, member_stirring_seed
from pipelines.sources.swe_stepping import AdamsBashforth3, BatchedTendency

SOLVER = "legendre-gauss:24x48"
STORE = "legendre-gauss:16x32"
SWE = SWESourceConfig(grid=SOLVER, lmax=16, substep_seconds=900.0, days=1.0, spinup_days=0.5, seed=3,
                      stirring=StirringConfig())


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("pm")
    return prepare(PrepareConfig(source="swe", swe=SWE, variables=["gh", "u", "v", "vo"], grid=STORE,
                                 method="spectral", out=str(root / "store.zarr"), scheduler="synchronous",
                                 sources_dir=str(root / "sources")))


@pytest.mark.parametrize("grid,lmax", [("legendre-gauss:24x48", 16), ("equiangular:33x64", 11)])
def test_batched_tendency_is_the_solvers(grid, lmax):
    solver = build_solver(SWEParameters(Grid.parse(grid), substep_seconds=900.0, lmax=lmax))
    states = torch.stack([initial_condition(solver, seed) for seed in (0, 1)])
    expected = torch.stack([solver.dudtspec(s) for s in states])
    got = BatchedTendency(solver)(states)
    assert float((got - expected).abs().max() / expected.abs().max()) < 1e-12


def test_ensemble_members_are_single_runs_with_their_own_stirring():
    params = SWEParameters(Grid.parse(SOLVER), substep_seconds=900.0, lmax=16, stirring=Stirring(), seed=3)
    solver = build_solver(params)
    start = initial_condition(solver, 3)
    seeds = [11, 12]
    states = list(ensemble_states(params, start[None].repeat(2, 1, 1, 1), seeds, [0.0, 2.0, 3.0]))
    assert torch.equal(states[0][0], start)
    for b, seed in enumerate(seeds):
        single = AdamsBashforth3(solver, start.clone(), StirringForce(solver, params.stirring, seed))
        np.testing.assert_allclose(states[1][b].numpy(), single.step(8).numpy(), rtol=0, atol=1e-9 * float(start.abs().max()))
        np.testing.assert_allclose(states[2][b].numpy(), single.step(4).numpy(), rtol=0, atol=1e-9 * float(start.abs().max()))
    assert not torch.allclose(states[2][0], states[2][1])        # the stirrings differ


def test_spectral_state_round_trip_on_a_gauss_grid():
    params = SWEParameters(Grid.parse(SOLVER), substep_seconds=900.0, lmax=16)
    solver = build_solver(params)
    state = initial_condition(solver, 0)[None]
    reader = SpectralState(Grid.parse(SOLVER))
    back = reader.to_spectral(reader.to_fields(state))[..., :16, :16]
    assert float((back - state).abs().max() / state.abs().max()) < 1e-12


def test_perfect_model_equals_a_hand_run_solver_ensemble(store, tmp_path):
    """Lead 0 is the store; each member is the solver run by hand from the store's state with
    that member's stirring, synthesised on the solver grid and regridded as the pipeline did."""
    from pipelines.store import open_store

    opened = open_store(store)
    inits = [opened.times[3], opened.times[9]]
    leads = pd.TimedeltaIndex([pd.Timedelta(hours=h) for h in (0, 3, 6)])
    out = perfect_model_forecast(store, inits, leads, 3, tmp_path / "pm.zarr", seed=5)
    ensemble = open_forecast(out)
    assert ensemble.sizes["member"] == 3 and ensemble.attrs["complete"] == 1
    fields = ["gh", "u", "v", "vo"]
    for v in fields:
        truth = opened.data[v].sel(time=inits).values
        np.testing.assert_allclose(ensemble[v].isel(lead_time=0).values, np.broadcast_to(truth, (3, 2, *truth.shape[1:])),
                                   rtol=1e-5, atol=1e-5 * float(np.abs(truth).max()))
    params = SWEParameters(Grid.parse(SOLVER), substep_seconds=900.0, lmax=16, stirring=Stirring(), seed=3)
    solver = build_solver(params)
    reader, synthesis = SpectralState(Grid.parse(STORE)), SpectralState(Grid.parse(SOLVER))
    regridder = make_regridder("spectral", Grid.parse(SOLVER), Grid.parse(STORE))
    for k, init in enumerate(inits):
        start = reader.to_spectral(torch.from_numpy(np.stack([opened.data[v].sel(time=init).values
                                                              for v in fields])[None].astype(np.float64)))
        for m in range(3):
            seed = member_stirring_seed(5, int(pd.Timestamp(init).value // 3_600_000_000_000), m)
            run = AdamsBashforth3(solver, start[0].clone(), StirringForce(solver, params.stirring, seed))
            state = run.step(24)    # 6 h of 900 s sub-steps
            raw = synthesis.to_fields(state[None]).numpy()
            by_hand = {"gh": regridder.apply(raw[:, 0]), "vo": regridder.apply(raw[:, 3])}
            by_hand["u"], by_hand["v"] = regridder.apply_vector(raw[:, 1], raw[:, 2])
            for v in fields:
                np.testing.assert_allclose(ensemble[v].isel(member=m, init_time=k, lead_time=2).values,
                                           by_hand[v][0], rtol=1e-4, atol=1e-5 * float(np.abs(by_hand[v]).max()))


def test_perfect_model_is_scored_beside_the_baselines(store, tmp_path):
    from pipelines.store import open_store

    inits = list(open_store(store).times[[2, 8]])
    leads = pd.TimedeltaIndex([pd.Timedelta(hours=h) for h in (0, 6, 12)])
    pm = perfect_model_forecast(store, inits, leads, 4, tmp_path / "pm.zarr")
    other = perfect_model_forecast(store, inits, leads, 4, tmp_path / "other.zarr", seed=1)
    scores = open_scores(verify(VerifyConfig(forecast=str(other), truth=str(store), perfect_model=str(pm),
                                             out=str(tmp_path / "scores.nc"))))
    assert list(scores["model"].values) == ["forecast", "persistence", "climatology", "perfect_model"]
    gh = scores["gh"].sel(region="global")
    assert float(gh.sel(model="perfect_model", metric="ens_rmse").isel(lead_time=0)) == pytest.approx(0.0, abs=1e-3)
    # another seed of the same ensemble: the same skill up to sampling, far better than persistence
    ratio = gh.sel(model="forecast", metric="crps") / gh.sel(model="perfect_model", metric="crps")
    assert 0.5 < float(ratio.isel(lead_time=2)) < 2.0
    assert float(gh.sel(model="perfect_model", metric="rmse").isel(lead_time=2)) < \
        float(gh.sel(model="persistence", metric="rmse").isel(lead_time=2))
    spectra = open_scores(tmp_path / "scores.nc", "spectra")
    assert list(spectra["source"].values) == ["forecast", "truth", "perfect_model"]


def test_perfect_model_refuses_other_stores_and_lead_times(store, tmp_path):
    from train_factories import make_swe_store

    plain = make_swe_store(tmp_path / "plain.zarr", n_times=8)
    with pytest.raises(InputError, match="embedded shallow-water source"):
        perfect_model_forecast(plain, [pd.Timestamp("2020-03-20T00")], pd.TimedeltaIndex(["0h", "1h"]), 2,
                               tmp_path / "a.zarr")
    from pipelines.store import open_store

    first = open_store(store).times[0]
    with pytest.raises(InputError, match="start at 0 and increase"):
        perfect_model_forecast(store, [first], pd.TimedeltaIndex(["6h", "3h"]), 2, tmp_path / "b.zarr")
    with pytest.raises(InputError, match="lies inside|is one of|input"):
        perfect_model_forecast(store, [first], pd.TimedeltaIndex(["0h"]), 2, store)
