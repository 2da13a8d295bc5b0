"""Tests of forecast.models: shapes, residual, SFNO equivariance, gradients, registry."""

from __future__ import annotations

import pytest
import torch
from torch_harmonics import InverseRealSHT, RealSHT

from forecast.config import ModelConfig
from forecast.models import ARCHITECTURES, InferenceOptions, build_model, count_parameters, estimate_flops
from forecast.models.sfno.convolution import SpectralConvS2
from forecast.models.sfno.sht import ChannelsLastInverseRealSHT, ChannelsLastRealSHT
from pipelines.errors import InputError
from pipelines.grids import Grid

GRIDS = ["legendre-gauss:16x32", "equiangular:17x32"]
N_STATE, N_FORCING = 3, 2


def _config(architecture: str, **overrides) -> ModelConfig:
    base = dict(architecture=architecture, embed_dim=16, num_layers=2, scale_factor=2, patch_size=[4, 4], num_blocks=4)
    return ModelConfig(**{**base, **overrides})


def _build(config: ModelConfig, grid: Grid):
    """``build_model``; a DYffusion model gets a horizon of 3 steps (training sets it from the data)."""
    model = build_model(config, grid, N_STATE, N_FORCING)
    if config.architecture == "dyffusion":
        model.set_horizon(3)
    return model


def _inputs(grid: Grid, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = torch.randn(batch, N_STATE, grid.nlat, grid.nlon, generator=gen)
    forcings = torch.randn(batch, N_FORCING, grid.nlat, grid.nlon, generator=gen)
    return state, forcings


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
@pytest.mark.parametrize("grid_spec", GRIDS)
def test_output_shape_and_finite(architecture: str, grid_spec: str) -> None:
    grid = Grid.parse(grid_spec)
    model = _build(_config(architecture), grid)
    out = model(*_inputs(grid))
    assert out.shape == (2, N_STATE, grid.nlat, grid.nlon)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("architecture", ["afno", "sfno"])   # DYffusion: tests/test_dyffusion.py
def test_residual_adds_the_input_state(architecture: str) -> None:
    grid = Grid.parse("equiangular:17x32")
    torch.manual_seed(0)
    model = build_model(_config(architecture, residual=True), grid, N_STATE, N_FORCING)
    state, forcings = _inputs(grid)
    full = model(state, forcings)
    model.residual = False
    increment = model(state, forcings)
    torch.testing.assert_close(full, state + increment)
    assert not torch.allclose(increment, torch.zeros_like(increment))
    last = model.decoder.fc2 if architecture == "sfno" else model.head   # zero the last layer: output = state
    with torch.no_grad():
        last.weight.zero_()
    model.residual = True
    torch.testing.assert_close(model(state, forcings), state)


@pytest.mark.parametrize("normalization", ["none", "layer", "instance"])
@pytest.mark.parametrize("grid_spec", GRIDS)
def test_sfno_equivariant_to_longitude_shifts(grid_spec: str, normalization: str) -> None:
    """Shifting the input by k grid points in longitude shifts the output by k points.

    Exact (to rounding) for SFNO without position embedding when k is a multiple of the
    scale factor; a shift by one point of the coarse grid moves every field substantially.
    """
    grid = Grid.parse(grid_spec)
    torch.manual_seed(0)
    model = build_model(_config("sfno", pos_embed=False, normalization=normalization), grid, N_STATE, N_FORCING)
    state, forcings = _inputs(grid)
    k = 2 * 3  # three points of the internal grid (scale_factor 2)
    out = model(state, forcings)
    shifted = model(state.roll(k, dims=-1), forcings.roll(k, dims=-1))
    torch.testing.assert_close(shifted, out.roll(k, dims=-1), atol=2e-5, rtol=1e-4)
    assert (out.roll(k, dims=-1) - out).abs().max() > 0.1   # the test would notice an invariant model


def test_sfno_latlon_embedding_breaks_equivariance() -> None:
    grid = Grid.parse("legendre-gauss:16x32")
    torch.manual_seed(0)
    model = build_model(_config("sfno", pos_embed=True, pos_embed_kind="latlon"), grid, N_STATE, N_FORCING)
    with torch.no_grad():
        model.pos_embed.embedding.normal_()
    state, forcings = _inputs(grid)
    shifted = model(state.roll(4, dims=-1), forcings.roll(4, dims=-1))
    assert (shifted - model(state, forcings).roll(4, dims=-1)).abs().max() > 1e-2


@pytest.mark.parametrize("grid_spec", GRIDS)
def test_channels_last_transforms_match_torch_harmonics(grid_spec: str) -> None:
    grid = Grid.parse(grid_spec)
    lmax = mmax = 8
    x = torch.randn(2, 3, grid.nlat, grid.nlon, dtype=torch.float64)
    ref = RealSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=mmax, grid=grid.kind).double()(x)     # (B, C, L, M)
    sht = ChannelsLastRealSHT(grid.nlat, grid.nlon, lmax, mmax, grid.kind).double()
    ours = sht(x.permute(0, 2, 3, 1))                                                         # (M, L, B, 2, C)
    torch.testing.assert_close(torch.complex(ours[..., 0, :], ours[..., 1, :]).permute(2, 3, 1, 0), ref)
    isht = ChannelsLastInverseRealSHT(grid.nlat, grid.nlon, lmax, mmax, grid.kind).double()
    back = InverseRealSHT(grid.nlat, grid.nlon, lmax=lmax, mmax=mmax, grid=grid.kind).double()(ref)
    torch.testing.assert_close(isht(ours).permute(0, 3, 1, 2), back)


def test_channels_last_transforms_hand_written_adjoints_gradcheck() -> None:
    """float64 gradcheck of the truncated FFTs' own backward, through both transforms."""
    grid = Grid.parse("legendre-gauss:6x12")
    sht = ChannelsLastRealSHT(grid.nlat, grid.nlon, 4, 4, grid.kind).double()
    isht = ChannelsLastInverseRealSHT(grid.nlat, grid.nlon, 4, 4, grid.kind).double()
    x = torch.randn(2, grid.nlat, grid.nlon, 3, dtype=torch.float64, requires_grad=True)
    coeffs = torch.randn(4, 4, 2, 2, 3, dtype=torch.float64, requires_grad=True)        # (M, L, B, 2, C)
    assert torch.autograd.gradcheck(sht, (x,))
    assert torch.autograd.gradcheck(isht, (coeffs,))


def test_spectral_conv_matches_complex_contraction_and_gradcheck() -> None:
    torch.manual_seed(0)
    conv = SpectralConvS2(lmax=3, in_channels=2, out_channels=3).double()
    s = torch.randn(3, 3, 2, 2, 2, dtype=torch.float64, requires_grad=True)   # (M, L, B, 2, C)
    w = torch.complex(conv.weight[0], conv.weight[1]).detach()                  # (L, C_in, C_out)
    expected = torch.einsum("mlbi,lio->mlbo", torch.complex(s[..., 0, :], s[..., 1, :]).detach(), w)
    out = conv(s)
    torch.testing.assert_close(torch.complex(out[..., 0, :], out[..., 1, :]), expected)
    assert torch.autograd.gradcheck(lambda s, w: _conv_with(conv, s, w), (s, conv.weight))


def _conv_with(conv: SpectralConvS2, s: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.func.functional_call(conv, {"weight": weight}, (s,))


def test_sfno_block_gradcheck_through_transforms() -> None:
    """float64 gradcheck of a resampling SFNO block (SHT -> conv -> inverse SHT -> MLP)."""
    torch.manual_seed(0)
    grid = Grid.parse("legendre-gauss:6x12")
    model = build_model(_config("sfno", embed_dim=2, num_layers=1, scale_factor=1, mlp_ratio=1.0), grid, 1, 0).double()
    block = model.blocks[0]
    x = torch.randn(1, grid.nlat, grid.nlon, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,))


@pytest.mark.parametrize("architecture", ["afno", "sfno"])   # DYffusion: tests/test_dyffusion.py
def test_gradients_reach_every_parameter(architecture: str) -> None:
    grid = Grid.parse("legendre-gauss:16x32")
    torch.manual_seed(0)
    model = build_model(_config(architecture, pos_embed=True), grid, N_STATE, N_FORCING)
    state, forcings = _inputs(grid)
    model(state, forcings).square().mean().backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


def test_afno_pads_and_crops_odd_grids() -> None:
    grid = Grid.parse("equiangular:17x30")
    model = build_model(_config("afno", patch_size=[4, 8]), grid, N_STATE, N_FORCING)
    assert model.padded == (20, 32)
    assert model(*_inputs(grid)).shape == (2, N_STATE, 17, 30)


def test_unknown_architecture_is_an_input_error() -> None:
    config = ModelConfig.model_construct(**{**ModelConfig().model_dump(), "architecture": "unet"})
    with pytest.raises(InputError, match="unknown model architecture 'unet'"):
        build_model(config, Grid.parse("legendre-gauss:16x32"), N_STATE, N_FORCING)


def test_too_large_scale_factor_is_an_input_error() -> None:
    with pytest.raises(InputError, match="scale_factor"):
        build_model(_config("sfno", scale_factor=16), Grid.parse("legendre-gauss:16x32"), N_STATE, N_FORCING)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_parameter_count_and_flops(architecture: str) -> None:
    grid = Grid.parse("legendre-gauss:16x32")
    model = _build(_config(architecture), grid)
    n_params = count_parameters(model)
    flops = estimate_flops(model, grid, N_STATE, N_FORCING)
    assert n_params > 0 and flops > 0
    # the training estimate (forward + backward) against a measured forward + backward pass:
    # the "backward = 2x forward" rule holds for the weights' matmuls, not for the fixed
    # Legendre/FFT transforms, so it overestimates a little (measured 8% SFNO, 12% AFNO)
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.randn(1, N_STATE, grid.nlat, grid.nlon), torch.randn(1, N_FORCING, grid.nlat, grid.nlon)).sum().backward()
    measured = counter.get_total_flops()
    assert measured == pytest.approx(estimate_flops(model, grid, N_STATE, N_FORCING, backward=True), rel=0.2)
    wider = _build(_config(architecture, embed_dim=32), grid)
    assert estimate_flops(wider, grid, N_STATE, N_FORCING) > flops
    assert count_parameters(wider) > n_params


def _stochastic_pair(noise_channels: int = 3, options: InferenceOptions = InferenceOptions(), **noise):
    grid = Grid.parse("legendre-gauss:16x32")
    torch.manual_seed(0)
    deterministic = build_model(_config("sfno", scale_factor=2), grid, N_STATE, N_FORCING)
    stochastic = build_model(_config("sfno", scale_factor=2, noise_channels=noise_channels, **noise), grid,
                             N_STATE, N_FORCING, options)
    missing, unexpected = stochastic.load_state_dict(deterministic.state_dict(), strict=False)
    assert not unexpected and all(".noise." in name for name in missing)
    return grid, deterministic.eval(), stochastic.eval()


def test_an_untrained_stochastic_sfno_is_exactly_the_deterministic_one() -> None:
    grid, deterministic, stochastic = _stochastic_pair()
    state, forcings = _inputs(grid)
    noise = stochastic.draw_noise([torch.Generator().manual_seed(s) for s in range(state.shape[0])])
    with torch.no_grad():
        expected = deterministic(state, forcings)
        assert torch.equal(stochastic(state, forcings, noise), expected)   # zero-initialised modulation
        assert torch.equal(stochastic(state, forcings), expected)          # no noise: the noise-free step


def test_stochastic_sfno_steps_depend_on_the_seeded_noise_only() -> None:
    grid, _, stochastic = _stochastic_pair()
    with torch.no_grad():
        for p in stochastic.parameters():
            if p.dim() == 2 and p.shape[1] == 3:   # the noise modulations (dim x K)
                p.normal_(0.0, 0.3)
    state, forcings = _inputs(grid)

    def step(seeds):
        noise = stochastic.draw_noise([torch.Generator().manual_seed(s) for s in seeds])
        with torch.no_grad():
            return stochastic(state, forcings, noise)

    a, b, c = step([1, 2]), step([1, 2]), step([1, 3])
    assert torch.equal(a, b)                                   # same seeds, same step
    assert torch.equal(a[0], c[0]) and not torch.allclose(a[1], c[1])   # each sample its own generator


@pytest.mark.parametrize("length_scales", [None, [300.0, 1000.0, 3000.0, 8000.0]], ids=["white", "shaped"])
def test_noise_fields_are_unit_variance_on_every_block_grid(length_scales) -> None:
    grid, _, stochastic = _stochastic_pair(noise_channels=4, noise_length_scales_km=length_scales)
    noise = stochastic.draw_noise([torch.Generator().manual_seed(s) for s in range(256)])
    for block in (stochastic.blocks[0], stochastic.blocks[1]):   # full grid and the coarser internal grid
        fields = block.isht(noise) * block.noise_scale            # (B, H, W, K)
        lat_w = torch.as_tensor(Grid.parse(f"{block.isht.grid}:{block.isht.nlat}x{block.isht.nlon}").area_weights().values)
        variance = (fields.double() ** 2 * lat_w[None, :, None, None]).mean(dim=(0, 1, 2))
        assert variance.numpy() == pytest.approx([1.0] * 4, rel=0.1)
    if length_scales is not None:   # longer length scales put the variance at lower degrees
        power = (noise ** 2).sum(dim=(0, 2, 3))                       # (L, K)
        low_fraction = power[:4].sum(0) / power.sum(0)
        assert torch.all(low_fraction[1:] > low_fraction[:-1]) and float(low_fraction[-1]) > 0.9


def test_ar1_noise_has_the_lag_one_correlation_and_unit_variance() -> None:
    """The AR(1) noise of consecutive steps from per-step generators (as training and the
    rollout name them) correlates by phi, with the variance of white noise, and a step's noise
    depends on the generators only (drawn twice: equal)."""
    from forecast.models.base import seeded_generator

    _, _, white = _stochastic_pair(noise_channels=2)
    _, _, ar1 = _stochastic_pair(noise_channels=2, noise_autocorrelation=0.6)
    seeds = list(range(40))

    def noise(model, step):
        return model.step_noise(lambda lag: model.draw_noise([seeded_generator(s, 0, step - lag) for s in seeds]))

    first, second = noise(ar1, 0), noise(ar1, 1)
    assert torch.equal(first, noise(ar1, 0))
    assert float((first * second).mean() / first.square().mean()) == pytest.approx(0.6, abs=0.03)
    assert float(first.square().mean()) == pytest.approx(float(noise(white, 0).square().mean()), rel=0.05)
    w0, w1 = noise(white, 0), noise(white, 1)
    assert abs(float((w0 * w1).mean() / w0.square().mean())) < 0.03


def test_noise_amplitude_scales_the_step_noise_exactly() -> None:
    """The inference factor multiplies the noise the generators give, white or AR(1)."""
    from forecast.models.base import seeded_generator

    for noise in ({}, {"noise_autocorrelation": 0.6}):
        _, _, plain = _stochastic_pair(noise_channels=2, **noise)
        _, _, louder = _stochastic_pair(noise_channels=2, options=InferenceOptions(noise_amplitude=2.5), **noise)
        def draw(lag, plain=plain):   # fresh generators each call: both models get the same innovations
            return plain.draw_noise([seeded_generator(s, 0, 3 - lag) for s in (1, 2)])

        reference, scaled = plain.step_noise(draw), louder.step_noise(draw)
        assert reference.abs().max() > 0
        torch.testing.assert_close(scaled, 2.5 * reference, rtol=1e-6, atol=0)


@pytest.mark.parametrize("limit", [{}, {"max_items": 15}, {"max_bytes": 1}], ids=["unbounded", "K+1", "nothing"])
def test_memoised_innovations_give_the_same_noise_with_one_draw_per_step(limit) -> None:
    """Consecutive AR(1) steps share all but one innovation: kept in an InnovationMemo, a run of
    n steps draws K + n innovations instead of n (K + 1), and the noise is the same to the bit;
    K + 1 kept innovations are enough (what a long rollout holds), and a memo too small to keep
    anything draws every time and still gives the same noise."""
    from forecast.models.base import seeded_generator
    from forecast.models.innovations import InnovationMemo

    _, _, model = _stochastic_pair(noise_channels=2, noise_autocorrelation=0.6)
    seeds, lags, steps = (1, 2, 3), model.noise_lags, 5
    assert lags == 14                                  # 0.6**14 < 1e-3 <= 0.6**13
    memo = InnovationMemo(lambda step: model.draw_noise([seeded_generator(s, 0, step) for s in seeds]), **limit)
    for step in range(steps):
        memoised = model.step_noise(lambda lag, step=step: memo(step - lag))
        direct = model.step_noise(
            lambda lag, step=step: model.draw_noise([seeded_generator(s, 0, step - lag) for s in seeds]))
        assert torch.equal(memoised, direct)
    assert memo.draws == (steps * (lags + 1) if "max_bytes" in limit else lags + steps)
    assert len(memo) == {"max_items": lags + 1, "max_bytes": 0}.get(next(iter(limit), ""), lags + steps)


def test_seeded_generators_accept_negative_counters() -> None:
    from forecast.models.base import seeded_generator

    draws = {c: float(torch.randn(1, generator=seeded_generator(7, 0, c))) for c in (-2, -1, 0, 1, 2**32 - 1)}
    assert len(set(draws.values())) == 5
    assert draws[-1] == float(torch.randn(1, generator=seeded_generator(7, 0, -1)))


def test_the_afno_refuses_noise_channels() -> None:
    with pytest.raises(InputError, match="noise_channels is for the SFNO"):
        build_model(_config("afno", noise_channels=2), Grid.parse("legendre-gauss:16x32"), N_STATE, N_FORCING)
