"""SFNO neural-operator options: spherical-harmonic position encoding, factorised spectral
weights, transform-once blocks; each against an independent reference and through a checkpoint."""

import math

import numpy as np
import pytest
import torch
from scipy.special import sph_harm_y
from torch_harmonics import InverseRealSHT, RealSHT

from forecast.checkpoint import Checkpoint, load_model, save_checkpoint
from forecast.config import ModelConfig
from forecast.forcings import forcing_names
from forecast.models import SFNO, build_model
from forecast.models.sfno.convolution import SpectralConvS2
from forecast.models.sfno.factorised import (CPSpectralConvS2, TuckerSpectralConvS2, cp_rank, make_spectral_conv,
                                             tucker_ranks)
from forecast.models.sfno.position import real_spherical_harmonics
from pipelines.errors import InputError
from pipelines.grids import Grid

VARIABLES = ["gh", "u", "v", "vo"]
N_FORCING = len(forcing_names([]))
OPTIONS = {
    "default": {},
    "shpe": {"pos_embed_kind": "spherical-harmonics", "sh_degree": 4, "sh_siren_layers": 2, "sh_siren_hidden": 16},
    "tucker": {"spectral_factorisation": "tucker", "spectral_rank": 0.3},
    "cp": {"spectral_factorisation": "cp", "spectral_rank": 0.3},
    "t1": {"transform_once": True},
    "t1-noise": {"transform_once": True, "noise_channels": 2, "spectral_factorisation": "tucker"},
}


def _config(**options) -> ModelConfig:
    return ModelConfig(**{"embed_dim": 8, "num_layers": 2, "scale_factor": 1, **options})


def _inputs(grid: Grid, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, len(VARIABLES), *grid.shape, generator=g),
            torch.randn(batch, N_FORCING, *grid.shape, generator=g))


# --- spherical-harmonic position encoding ---------------------------------------------------------
def test_real_spherical_harmonics_match_scipy():
    rng = np.random.default_rng(1)
    colat, lon = rng.uniform(0, np.pi, 200), rng.uniform(0, 2 * np.pi, 200)
    degree = 8
    ours = real_spherical_harmonics(torch.tensor(colat), torch.tensor(lon), degree).numpy()
    reference = []
    for l in range(degree + 1):
        for m in range(-l, l + 1):
            y = sph_harm_y(l, abs(m), colat, lon)   # complex, Condon-Shortley phase
            reference.append(math.sqrt(2) * y.imag if m < 0 else y.real if m == 0 else math.sqrt(2) * y.real)
    np.testing.assert_allclose(ours, np.stack(reference, axis=-1), atol=1e-12)


def test_real_spherical_harmonics_are_orthonormal_on_a_gauss_grid():
    grid = Grid.parse("legendre-gauss:12x24")     # exact for degree <= 11 products of degree <= 5
    colat = torch.tensor(grid.colat)[:, None].expand(grid.shape)
    lon = torch.tensor(np.deg2rad(grid.lon))[None, :].expand(grid.shape)
    y = real_spherical_harmonics(colat, lon, 5).reshape(-1, 36)
    w = torch.tensor(grid.cell_area()).reshape(-1, 1)
    torch.testing.assert_close(y.T @ (w * y), torch.eye(36, dtype=torch.float64), atol=1e-10, rtol=0)


@pytest.mark.parametrize("option", ["shpe", "t1-noise"])
def test_one_model_runs_on_two_grids(option):
    options = {**OPTIONS[option], "pos_embed_kind": "spherical-harmonics"}
    coarse, fine = Grid.parse("legendre-gauss:8x16"), Grid.parse("legendre-gauss:16x32")
    torch.manual_seed(0)
    model = build_model(_config(**options), coarse, len(VARIABLES), N_FORCING).eval()
    assert isinstance(model, SFNO)
    for grid in (fine, coarse):
        model.set_grid(grid)
        state, forcings = _inputs(grid)
        noise = model.draw_noise([torch.Generator().manual_seed(i) for i in range(2)]) if model.stochastic else None
        out = model(state, forcings, noise)
        assert out.shape == state.shape and torch.isfinite(out).all()
    # back on its own grid it is the model it was
    state, forcings = _inputs(coarse)
    fresh = build_model(_config(**options), coarse, len(VARIABLES), N_FORCING).eval()
    fresh.load_state_dict(model.state_dict())
    noise = model.draw_noise([torch.Generator().manual_seed(i) for i in range(2)]) if model.stochastic else None
    torch.testing.assert_close(model(state, forcings, noise), fresh(state, forcings, noise))


def test_learned_position_embedding_refuses_another_grid():
    model = build_model(_config(), Grid.parse("legendre-gauss:8x16"), len(VARIABLES), N_FORCING)
    with pytest.raises(InputError, match="spherical-harmonics"):
        model.set_grid(Grid.parse("legendre-gauss:16x32"))


# --- factorised spectral weights ------------------------------------------------------------------
def _coefficients(lmax: int, channels: int) -> torch.Tensor:
    return torch.randn(lmax, lmax, 3, 2, channels, generator=torch.Generator().manual_seed(2), dtype=torch.float64)


def test_tucker_at_full_rank_reconstructs_the_dense_weights():
    dense = SpectralConvS2(6, 4, 5).double()
    tucker = TuckerSpectralConvS2.from_dense(dense.weight).double()
    torch.testing.assert_close(tucker.dense_weight(), dense.weight, atol=1e-12, rtol=0)
    s = _coefficients(6, 4)
    torch.testing.assert_close(tucker(s), dense(s), atol=1e-12, rtol=0)


def test_cp_at_full_rank_reconstructs_the_dense_weights():
    dense = SpectralConvS2(5, 3, 4).double()
    cp = CPSpectralConvS2.from_dense(dense.weight).double()
    torch.testing.assert_close(cp(_coefficients(5, 3)), dense(_coefficients(5, 3)), atol=1e-12, rtol=0)


def test_truncated_tucker_is_the_best_fit_of_its_ranks_and_smaller():
    weight = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    errors = [torch.linalg.norm(TuckerSpectralConvS2.from_dense(weight, (2, r, 6, 6)).dense_weight().double() - weight)
              for r in (2, 4, 8)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-10


@pytest.mark.parametrize("factorisation", ["tucker", "cp"])
@pytest.mark.parametrize("ratio", [0.05, 0.2, 0.5])
def test_rank_ratio_bounds_the_parameters(factorisation, ratio):
    conv = make_spectral_conv(32, 32, 32, factorisation, ratio)
    dense = 2 * 32 * 32 * 32
    assert sum(p.numel() for p in conv.parameters()) <= ratio * dense
    assert tucker_ranks((2, 32, 32, 32), 10.0) == (2, 32, 32, 32) and cp_rank((2, 32, 32, 32), 1.0) == 65536 // 98


@pytest.mark.parametrize("factorisation", ["tucker", "cp"])
def test_factorised_initialisation_has_the_dense_variance(factorisation):
    torch.manual_seed(0)
    conv = make_spectral_conv(32, 64, 64, factorisation, 0.2)
    expected = 2.0 / 64 / 2.0
    assert abs(conv.dense_weight().var().item() / expected - 1.0) < 0.5


# --- transform once ------------------------------------------------------------------------------
def _dense_transforms(grid: Grid, modes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Explicit matrices of torch-harmonics' transforms: forward ``(L, M, H W)`` complex, inverse
    of the real and of the imaginary parts ``(H W, L, M)``."""
    sht = RealSHT(grid.nlat, grid.nlon, modes, modes, grid=grid.kind).double()
    isht = InverseRealSHT(grid.nlat, grid.nlon, modes, modes, grid=grid.kind).double()
    n = grid.nlat * grid.nlon
    forward = sht(torch.eye(n, dtype=torch.float64).view(n, *grid.shape)).reshape(n, -1).T.reshape(modes, modes, n)
    basis = torch.eye(modes * modes, dtype=torch.complex128).view(-1, modes, modes)
    inv_re = isht(basis).reshape(-1, n).T.reshape(n, modes, modes)
    inv_im = isht(1j * basis).reshape(-1, n).T.reshape(n, modes, modes)
    return forward, inv_re, inv_im


def _t1_reference(model: SFNO, x: torch.Tensor) -> torch.Tensor:
    """``model.network(x)`` written with explicit transform matrices and complex arithmetic."""
    grid, modes = model.grid, model.modes
    forward, inv_re, inv_im = _dense_transforms(grid, modes)
    xl = x.permute(0, 2, 3, 1)
    h = model.pos_embed(model.encoder(xl))                                    # (B, H, W, C)
    b, c = h.shape[0], h.shape[-1]
    coeffs = torch.einsum("lmn,bnc->blmc", forward, h.reshape(b, -1, c).to(torch.complex128))
    l_idx, m_idx = torch.meshgrid(torch.arange(modes), torch.arange(modes), indexing="ij")
    valid = (m_idx <= l_idx)[None, :, :, None]
    for block in model.blocks:
        w = block.conv.dense_weight()
        y = torch.einsum("blmi,lio->blmo", coeffs, torch.complex(w[0], w[1]))
        features = torch.cat([y.real, y.imag], dim=-1)                       # (re, im) as 2C features
        update = block.mlp.fc2(block.mlp.act(block.mlp.fc1(features)))
        coeffs = coeffs + torch.complex(update[..., :c], update[..., c:])
        coeffs = torch.where(valid, coeffs, 0)
        coeffs[:, :, 0] = coeffs[:, :, 0].real.to(torch.complex128)          # real fields: Im at m = 0 is 0
    field = (torch.einsum("nlm,blmc->bnc", inv_re, coeffs.real) + torch.einsum("nlm,blmc->bnc", inv_im, coeffs.imag))
    h = torch.cat([field.reshape(b, *grid.shape, c), xl], dim=-1)
    return model.decoder(h).permute(0, 3, 1, 2)


@pytest.mark.parametrize("spec", ["legendre-gauss:8x16", "equiangular:9x16"])
def test_transform_once_against_dense_transforms(spec):
    grid = Grid.parse(spec)
    torch.manual_seed(0)
    model = build_model(_config(transform_once=True, num_layers=3), grid, len(VARIABLES), N_FORCING).double()
    assert isinstance(model, SFNO) and model.transform_once
    x = torch.cat(_inputs(grid), dim=1).double()
    with torch.no_grad():   # the model's Legendre tables are stored in float32: agreement to ~1e-7
        torch.testing.assert_close(model.network(x), _t1_reference(model, x), atol=2e-6, rtol=1e-5)


def test_transform_once_uses_one_transform_pair():
    grid = Grid.parse("legendre-gauss:8x16")
    model = build_model(_config(transform_once=True, num_layers=4), grid, len(VARIABLES), N_FORCING)
    calls = []
    for transform in (model.sht, model.isht):
        transform.register_forward_hook(lambda *args: calls.append(1))
    model(*_inputs(grid))
    assert len(calls) == 2


# --- checkpoints ---------------------------------------------------------------------------------
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_every_option_round_trips_through_a_checkpoint(tmp_path, option):
    grid = Grid.parse("legendre-gauss:8x16")
    config = _config(**OPTIONS[option])
    torch.manual_seed(0)
    model = build_model(config, grid, len(VARIABLES), N_FORCING).eval()
    with torch.no_grad():   # move every weight off its initial value (zero-initialised outputs included)
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    ckpt = Checkpoint(model_config=config, train_config={}, grid=grid, variables=VARIABLES, static_names=[],
                      static=None, mean=np.zeros(4), std=np.ones(4), time_step_seconds=3600.0, step=1, epoch=0,
                      model_state=model.state_dict())
    loaded, read = load_model(save_checkpoint(tmp_path / "c.pt", ckpt))
    assert read.model_config == config
    state, forcings = _inputs(grid)
    noise = model.draw_noise([torch.Generator().manual_seed(i) for i in range(2)]) if model.stochastic else None
    with torch.no_grad():
        torch.testing.assert_close(loaded(state, forcings, noise), model(state, forcings, noise), atol=0, rtol=0)


@pytest.mark.parametrize("name", ["sfno-shpe", "sfno-tucker", "sfno-cp", "sfno-t1"])
def test_option_configs_load_and_build(name):
    from pathlib import Path

    from pipelines.config import load_config
    config = load_config(ModelConfig, Path(__file__).parents[1] / "configs" / "models" / f"{name}.yaml")
    model = build_model(config, Grid.parse("legendre-gauss:16x32"), len(VARIABLES), N_FORCING)
    assert model(*_inputs(Grid.parse("legendre-gauss:16x32"))).shape == (2, 4, 16, 32)


@pytest.mark.parametrize("option", ["default", "t1-noise"])
def test_ensemble_forward_is_the_forward_of_the_repeated_batch(option):
    grid = Grid.parse("legendre-gauss:8x16")
    torch.manual_seed(0)
    model = build_model(_config(**{**OPTIONS[option], "noise_channels": 2}), grid, len(VARIABLES), N_FORCING)
    assert isinstance(model, SFNO)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state, forcings = _inputs(grid)
    members = 3
    noise = model.draw_noise([torch.Generator().manual_seed(i) for i in range(2 * members)])
    expected = model(state.repeat_interleave(members, 0), forcings.repeat_interleave(members, 0), noise)
    torch.testing.assert_close(model.ensemble_forward(state, forcings, noise, members), expected)
