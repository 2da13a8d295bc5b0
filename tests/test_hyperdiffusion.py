"""Spectral hyperdiffusion of the model's step: the filter's maths on single harmonics, its
place in the step, and the step length and statistics from the data, rebuilt from a checkpoint."""

import math

import numpy as np
import pytest
import torch
from torch_harmonics import InverseRealSHT, RealSHT

from forecast.config import ModelConfig
from forecast.models import SpectralHyperdiffusion, TrainedOn, build_model, build_step_constraints, constrained_step
from pipelines.errors import InputError
from pipelines.grids import Grid
from train_factories import cached_swe_store, tiny_train_config

GRID = Grid.parse("legendre-gauss:16x32")


def harmonic(grid: Grid, l: int, m: int) -> torch.Tensor:
    """The real field of the single coefficient (l, m) = 1, ``(1, 1, H, W)``."""
    coeffs = torch.zeros(1, 1, grid.nlat, grid.nlat, dtype=torch.complex64)
    coeffs[0, 0, l, m] = 1.0
    return InverseRealSHT(grid.nlat, grid.nlon, lmax=grid.nlat, mmax=grid.nlat, grid=grid.kind)(coeffs)


@pytest.mark.parametrize("kind", ["legendre-gauss", "equiangular"])
def test_each_degree_is_damped_by_the_hyperdiffusion_formula(kind):
    grid = Grid(kind, 16, 32) if kind == "legendre-gauss" else Grid(kind, 17, 32)
    filt = SpectralHyperdiffusion(grid, efold_hours=2.0, degree=7, order=4)
    filt.set_time_step(6 * 3600)
    for l, m in [(0, 0), (3, 1), (7, 0), (7, 5), (9, 2)]:
        field = harmonic(grid, l, m)
        expected = math.exp(-6.0 / 2.0 * (l * (l + 1) / 56.0) ** 4)       # 56 = 7 * 8
        torch.testing.assert_close(filt(field), expected * field, atol=2e-6 * field.abs().max().item(), rtol=0)
    # at the reference degree the e-folding time is 2 h, so a 6 h step keeps e^-3
    assert filt.factors[7].item() == pytest.approx(math.exp(-3.0), rel=1e-6)


def test_without_a_step_length_the_filter_keeps_band_limited_fields():
    filt = SpectralHyperdiffusion(GRID, efold_hours=1.0)
    field = harmonic(GRID, 5, 3) + 0.5 * harmonic(GRID, 12, 0) + 3.0
    torch.testing.assert_close(filt(field), field, atol=1e-5, rtol=0)


def test_states_with_leading_dims_are_filtered_each_as_a_state():
    filt = SpectralHyperdiffusion(GRID, efold_hours=2.0, degree=7, vector_pairs=[(0, 1)])
    filt.set_time_step(6 * 3600)
    filt.set_normalisation(torch.zeros(3), torch.ones(3))
    states = torch.randn(2, 4, 3, 16, 32, generator=torch.Generator().manual_seed(0))     # (B, h, C, H, W)
    filtered = filt(states)
    assert filtered.shape == states.shape and not torch.allclose(filtered, states)
    torch.testing.assert_close(filtered, torch.stack([filt(states[:, i]) for i in range(4)], dim=1),
                               rtol=0, atol=1e-6)


def _trained_on(channels: int, hours: float = 6.0) -> TrainedOn:
    return TrainedOn(GRID, [f"x{c}" for c in range(channels)], hours * 3600.0, np.zeros(channels), np.ones(channels))


def test_the_constrained_step_ends_with_the_filter():
    config = ModelConfig(embed_dim=8, num_layers=2, hyperdiffusion_efold_hours=3.0, hyperdiffusion_degree=6)
    model = build_model(config, GRID, 2, 1)
    constraints = build_step_constraints([config], _trained_on(2))[0]
    state, forcings = torch.randn(3, 2, 16, 32), torch.randn(3, 1, 16, 32)
    with torch.no_grad():
        unfiltered, new = model(state, forcings), constrained_step(model, constraints, state, forcings)
    sht = RealSHT(16, 32, lmax=16, mmax=16, grid=GRID.kind)
    ratio = (sht(new).abs() / sht(unfiltered).abs().clamp_min(1e-6))        # (B, C, L, M)
    factors = constraints.constraints[0].factors
    for l in (1, 4, 6):   # the unfiltered step's coefficients scaled by D_l
        np.testing.assert_allclose(ratio[..., l, : l + 1].numpy(), factors[l].item(), rtol=2e-3)
    assert 0.05 < factors[6] < 1.0
    # and from l = 8 on (D_8 ~ 4e-8) nothing is left but float rounding
    assert sht(new)[..., 8:, :].abs().max() < 1e-5 * sht(unfiltered).abs().max()


def test_bad_settings_are_refused():
    with pytest.raises(InputError, match="degree 16 must be between 1"):
        SpectralHyperdiffusion(GRID, efold_hours=2.0, degree=16)
    dyffusion = ModelConfig(architecture="dyffusion", embed_dim=8, num_layers=2, hyperdiffusion_efold_hours=2.0)
    with pytest.raises(InputError, match="DYffusion"):
        build_step_constraints([dyffusion], _trained_on(2))


def test_training_filters_with_the_model_step_and_a_checkpoint_rebuilds_the_filter(tmp_path):
    from forecast.checkpoint import load_checkpoint, load_model
    from forecast.train import train

    store = cached_swe_store(n_times=48, with_static=True)
    config = tiny_train_config(store, tmp_path / "run", max_steps=2,
                               model={"hyperdiffusion_efold_hours": 2.0, "hyperdiffusion_degree": 5})
    result = train(config)
    model, ckpt = load_model(result.checkpoint)
    filt = build_step_constraints([ckpt.model_config], TrainedOn.of(ckpt))[0].constraints[0]
    l = torch.arange(model.grid.nlat, dtype=torch.float64)
    expected = torch.exp(-ckpt.time_step_seconds / 7200.0 * (l * (l + 1) / 30.0) ** 4)
    torch.testing.assert_close(filt.factors.double(), expected, rtol=1e-6, atol=1e-30)
    assert filt.factors[5] < 1.0 and filt.vector_pairs == [(1, 2)]                  # u, v of the store
    torch.testing.assert_close(filt.std.double(), torch.as_tensor(ckpt.std), rtol=1e-7, atol=0)
    # the filter is not part of the model's weights; a checkpoint written while it was still
    # loads, its filter's tables left to the chain
    state = load_checkpoint(result.checkpoint).model_state
    assert not any(k.startswith("hyperdiffusion.") for k in state)
    legacy = {**state, "hyperdiffusion.factors": filt.factors, "hyperdiffusion.mean": filt.mean,
              "hyperdiffusion.std": filt.std}
    fresh = build_model(ckpt.model_config, ckpt.grid, 4, model.n_forcing)
    fresh.load_state_dict(legacy)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))


def test_winds_are_filtered_as_vectors_so_their_vorticity_is_damped_like_the_vorticity_field():
    from torch_harmonics.examples import ShallowWaterSolver

    from train_factories import VARIABLES, simulate_swe

    states = torch.from_numpy(simulate_swe(GRID, 2, seed=3)[-1:]).double()          # (1, 4, 16, 32): gh, u, v, vo
    mean, std = states.mean(dim=(0, 2, 3)), states.std(dim=(0, 2, 3))
    normalised = ((states - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).float()
    filt = SpectralHyperdiffusion(GRID, efold_hours=2.0, degree=4, order=2, vector_pairs=[(1, 2)])
    assert filt.vector_pairs == [(1, 2)] and VARIABLES[1:3] == ["u", "v"]
    filt.set_normalisation(mean, std)
    # without damping a solver's wind comes back as it was; filtered as two scalars it would not
    torch.testing.assert_close(filt(normalised), normalised, atol=2e-5, rtol=0)
    assert (SpectralHyperdiffusion(GRID, efold_hours=2.0)(normalised) - normalised)[:, 1:3].abs().max() > 1e-3
    filt.set_time_step(6 * 3600)
    new = filt(normalised).double() * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)
    assert (new[:, 3] - states[:, 3]).abs().max() > 0.05 * states[:, 3].abs().max()    # it does damp
    solver = ShallowWaterSolver(16, 32, 60.0, lmax=16, mmax=16, grid=GRID.kind).double()
    vorticity_of_wind = solver.spec2grid(solver.vrtdivspec(new[0, 1:3])[0])
    torch.testing.assert_close(vorticity_of_wind, new[0, 3], atol=1e-4 * states[:, 3].abs().max().item(), rtol=0)


def test_wind_pairs_come_from_the_names():
    from forecast.models import wind_pairs

    assert wind_pairs(["gh", "u", "v", "vo"]) == [(1, 2)]
    assert wind_pairs(["v10", "t2m", "u10", "u_850", "v_850", "u100"]) == [(2, 0), (3, 4)]
