"""The chain of step constraints: built in the documented order, and the rollout engine's and
training's constrained steps equal, to the bit, the model's step followed by the constraints
composed by hand (a stochastic SFNO with hyperdiffusion, and DYffusion with its intermediate
states)."""

import numpy as np
import pandas as pd
import pytest
import torch

from forecast.config import ModelConfig, RolloutConfig
from forecast.forcings import compute_forcings, forcing_names
from forecast.models import (GlobalMeanConservation, SpectralHyperdiffusion, SpectralPowerCap, TrainedOn,
                             build_model, build_step_constraints, wind_pairs)
from forecast.rollout.engine import RolloutEngine, noise_generator
from forecast.training.trainer import Rollout
from pipelines.grids import Grid
from pipelines.harmonics import degree_power, sht

GRID = Grid.parse("legendre-gauss:16x32")
VARIABLES = ["gh", "u", "v", "vo"]
STEP = pd.Timedelta(hours=1)
TIME = pd.Timestamp("2020-03-20T06")
SFNO = ModelConfig(embed_dim=8, num_layers=2, scale_factor=1, noise_channels=2, noise_autocorrelation=0.5,
                   hyperdiffusion_efold_hours=2.0, hyperdiffusion_degree=6)
DYFFUSION = ModelConfig(architecture="dyffusion", embed_dim=8, num_layers=2, scale_factor=1, mlp_dropout=0.1,
                        drop_path_rate=0.1)
ROLLOUT = RolloutConfig(spectral_cap=1.0, conserve_global_mean=["gh", "vo"])
MEAN, STD = np.array([1e4, 0.0, 0.0, 0.0]), np.array([500.0, 10.0, 10.0, 1e-5])


def _state(seed: int = 0) -> torch.Tensor:
    return torch.randn(3, len(VARIABLES), GRID.nlat, GRID.nlon, generator=torch.Generator().manual_seed(seed))


def _trained_on() -> TrainedOn:
    # a reference spectrum well below the states' own, so that the cap acts at every degree
    spectrum = 0.1 * degree_power(sht(GRID).double()(_state(1).double())).mean(0).numpy()
    return TrainedOn(GRID, VARIABLES, STEP.total_seconds(), MEAN, STD, spectrum)


def _model(config: ModelConfig) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(config, GRID, len(VARIABLES), len(forcing_names([])))
    if config.architecture == "dyffusion":
        model.set_horizon(3)
    with torch.no_grad():   # "trained" noise and step modulations, so that they matter
        for name, p in model.named_parameters():
            if ".noise." in name or ".step." in name:
                p.normal_(0.0, 0.3)
    return model.eval()


def _by_hand(new: torch.Tensor, state: torch.Tensor, hyperdiffusion: bool) -> torch.Tensor:
    """The documented chain, composed from independently built constraints: hyperdiffusion,
    cap, conservation; each stage must change the state (else the test could not fail)."""
    stages = []
    if hyperdiffusion:
        filt = SpectralHyperdiffusion(GRID, 2.0, 6, 4, wind_pairs(VARIABLES))
        filt.set_time_step(STEP.total_seconds())
        filt.set_normalisation(MEAN, STD)
        stages.append(filt)
    stages += [SpectralPowerCap(GRID, _trained_on().power_spectrum, 1.0),
               GlobalMeanConservation(GRID, [0, 3])]
    for stage in stages:
        constrained = stage(new, state)
        assert not torch.equal(constrained, new), type(stage).__name__
        new = constrained
    return new


def test_the_chain_is_hyperdiffusion_cap_conservation_and_shares_the_rollouts_constraints():
    plain = SFNO.model_copy(update={"hyperdiffusion_efold_hours": None})
    chains = build_step_constraints([SFNO, plain], _trained_on(), ROLLOUT)
    assert [type(c) for c in chains[0].constraints] == [SpectralHyperdiffusion, SpectralPowerCap,
                                                         GlobalMeanConservation]
    assert [type(c) for c in chains[1].constraints] == [SpectralPowerCap, GlobalMeanConservation]
    assert chains[0].constraints[1] is chains[1].constraints[0]
    assert [type(c) for c in build_step_constraints([SFNO], _trained_on())[0].constraints] == [SpectralHyperdiffusion]
    state = _state()
    assert build_step_constraints([plain], _trained_on())[0](state, state) is state        # empty: the state itself


@pytest.mark.parametrize("config, intermediate", [(SFNO, False), (DYFFUSION, False), (DYFFUSION, True)],
                         ids=["stochastic-sfno", "dyffusion", "dyffusion-intermediate"])
def test_the_engines_step_is_the_model_step_then_the_constraints_to_the_bit(config, intermediate):
    model, state, members = _model(config), _state(), torch.arange(3)
    chains = build_step_constraints([config], _trained_on(), ROLLOUT)
    engine = RolloutEngine([model], GRID, STEP, None, None, torch.device("cpu"), chains)
    out = engine.step(state, TIME, members, noise_seed=5, intermediate=intermediate)
    with torch.no_grad():
        noise = model.step_noise(lambda lag: model.draw_noise(
            [noise_generator(5, m, None if lag is None else TIME - lag * STEP) for m in range(3)]))
        forcings = compute_forcings(GRID, np.array([TIME.to_datetime64()])).expand(3, -1, -1, -1)
        new = model.sample(state, forcings, noise, intermediate=True) if intermediate else model(state, forcings, noise)
        expected = _by_hand(new, state, hyperdiffusion=config.architecture == "sfno")
    assert out.shape == ((3, 3, 4, 16, 32) if intermediate else (3, 4, 16, 32))
    assert torch.equal(out, expected)


def test_training_steps_through_the_model_and_its_hyperdiffusion_to_the_bit():
    model, state = _model(SFNO), _state()
    chain = build_step_constraints([SFNO], _trained_on())[0]
    forcings = torch.randn(3, 2, len(forcing_names([])), GRID.nlat, GRID.nlon, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        predictions = Rollout(model, 1, chain)(state, forcings)                      # (B, 2, C, H, W)
        filt = chain.constraints[0]
        first = filt(model(state, forcings[:, 0]))
        second = filt(model(first, forcings[:, 1]))
    assert torch.equal(predictions, torch.stack([first, second], dim=1))
    assert not torch.equal(first, model(state, forcings[:, 0]))


def test_diagnosed_vorticity_is_the_curl_of_the_winds():
    """On data whose winds were regridded as vectors, the curl of the winds is the stored
    vorticity; the constraint puts the curl of the (changed) winds in place of the vorticity."""
    from forecast.models.diagnostics import DiagnosedVorticity, vorticity_triples
    from pipelines.regrid import SpectralRegridder
    from pipelines.sources.swe import simulate_swe

    source, target = Grid.parse("legendre-gauss:24x48"), Grid.parse("legendre-gauss:16x32")
    ds = simulate_swe(source, 1, substep_seconds=900.0, lmax=16, seed=4).isel(time=0)
    out = SpectralRegridder(source, target)(ds.rename(latitude="lat", longitude="lon"))
    names = ["gh", "u", "v", "vo"]
    assert vorticity_triples(names) == [(1, 2, 3)] and vorticity_triples(["gh", "u", "v"]) == []
    mean, std = np.array([9000.0, 1.0, -0.5, 0.0]), np.array([100.0, 10.0, 10.0, 1e-5])
    state = torch.from_numpy(((np.stack([out[v].values for v in names]) - mean[:, None, None])
                              / std[:, None, None])[None].astype(np.float32))
    diagnosed = DiagnosedVorticity(target, [(1, 2, 3)], mean, std)
    same = diagnosed(state, state)
    assert float((same[0, 3] - state[0, 3]).abs().max()) < 1e-4 * float(state[0, 3].abs().max())
    changed = state.clone()
    changed[0, 3] = 0.0                                # a vorticity that disagrees with the winds
    assert torch.allclose(diagnosed(changed, state), same, atol=1e-6)
    assert torch.equal(diagnosed(changed, state)[:, :3], changed[:, :3])


def test_the_engine_draws_each_innovation_once_and_keeps_only_what_the_next_step_needs():
    """Stepping two models' members through a run, the engine draws K + n innovations per batch
    of members (not n (K + 1)) and keeps K + 2 per batch, however long the run: the AR(1) noise
    costs one draw a step and its memory does not grow with the lead time."""
    models = [_model(SFNO), _model(SFNO)]
    engine = RolloutEngine(models, GRID, STEP, None, None, torch.device("cpu"))
    lags, steps, state, members = models[0].noise_lags, 12, _state(), torch.arange(3)
    assert lags == 10                                  # 0.5**10 < 1e-3 <= 0.5**9
    for n in range(steps):
        state = engine.step(state, TIME + n * STEP, members, noise_seed=5)
    batches = len(engine.groups(members))
    assert batches == 2
    assert engine._innovations.draws == batches * (lags + steps)
    assert len(engine._innovations) == batches * (lags + 2)
