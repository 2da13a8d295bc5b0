"""Initial-condition perturbations: amplitude, spatial scale, seeds, centring, breeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_harmonics import RealSHT

from forecast.rollout.perturbations import (BredVector, Centred, Compose, Identity, SphericalGaussian,
                                            amplitude_vector, weighted_rms)
from pipelines.errors import InputError
from pipelines.grids import Grid

GRID = Grid.parse("legendre-gauss:16x32")


def lat_weights(grid: Grid) -> torch.Tensor:
    return torch.as_tensor(grid.latitude_weights, dtype=torch.float32)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def spectrum_centroid(fields: torch.Tensor, grid: Grid) -> float:
    """Power-weighted mean total wavenumber l of fields ``(..., H, W)``."""
    coeffs = RealSHT(grid.nlat, grid.nlon, grid=grid.kind)(fields.double())
    power = coeffs.abs() ** 2
    power[..., 1:] *= 2  # m > 0 stands for +-m
    per_l = power.sum(-1).reshape(-1, power.shape[-2]).mean(0)
    ls = torch.arange(per_l.numel(), dtype=per_l.dtype)
    return float((per_l * ls).sum() / per_l.sum())


def test_spherical_gaussian_has_the_requested_amplitude_per_variable():
    amplitude = np.array([0.05, 0.2, 0.0, 1.0])
    state = torch.randn(6, 4, *GRID.shape, generator=gen(1))
    out = SphericalGaussian(GRID, amplitude, length_scale_km=1000.0)(state, gen())
    delta = out - state
    rms = weighted_rms(delta, lat_weights(GRID))
    mean = (delta * lat_weights(GRID)[:, None]).mean(dim=(-2, -1))
    np.testing.assert_allclose(rms.numpy(), np.broadcast_to(amplitude, (6, 4)), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(mean.numpy(), 0.0, atol=1e-5)
    assert torch.equal(out[:, 2], state[:, 2])            # amplitude 0: untouched
    assert not torch.allclose(delta[0, 0], delta[1, 0])   # members differ


def test_a_larger_length_scale_moves_the_spectrum_to_lower_wavenumbers():
    grid = Grid.parse("legendre-gauss:32x64")
    zeros = torch.zeros(16, 1, *grid.shape)
    centroids = {}
    for length in (300.0, 1000.0, 4000.0):
        delta = SphericalGaussian(grid, np.array([1.0]), length_scale_km=length)(zeros, gen())
        centroids[length] = spectrum_centroid(delta[:, 0], grid)
    assert centroids[4000.0] < 0.6 * centroids[1000.0]
    assert centroids[1000.0] < 0.8 * centroids[300.0]
    # tau = R / L = 1.6 for 4000 km: the variance sits at the lowest degrees (peak near tau / sqrt(3))
    assert 1.0 < centroids[4000.0] < 4.0


def test_the_seed_makes_perturbations_reproducible():
    perturb = SphericalGaussian(GRID, np.full(4, 0.1), length_scale_km=800.0)
    state = torch.zeros(3, 4, *GRID.shape)
    assert torch.equal(perturb(state, gen(7)), perturb(state, gen(7)))
    assert not torch.equal(perturb(state, gen(7)), perturb(state, gen(8)))


def test_centring_keeps_the_ensemble_mean_on_the_analysis():
    state = torch.randn(1, 4, *GRID.shape, generator=gen(2)).expand(5, -1, -1, -1)
    out = Centred(SphericalGaussian(GRID, np.full(4, 0.3), length_scale_km=800.0))(state, gen())
    torch.testing.assert_close(out.mean(0), state[0], atol=1e-6, rtol=0)
    assert float((out - state).abs().max()) > 0.1


def test_compose_adds_the_perturbations_in_turn():
    first = SphericalGaussian(GRID, np.full(4, 0.1), length_scale_km=800.0)
    state = torch.zeros(2, 4, *GRID.shape)
    assert torch.equal(Compose([first, Identity()])(state, gen(3)), first(state, gen(3)))
    both = Compose([first, first])(state, gen(3))
    rms = weighted_rms(both, lat_weights(GRID))
    assert float(rms.min()) > 0.1 and float(rms.max()) < 0.2   # two independent fields of 0.1: about 0.14


def test_amplitudes_by_variable_and_bad_amplitudes():
    np.testing.assert_array_equal(amplitude_vector({"u": 0.2}, ["gh", "u"]), [0.0, 0.2])
    np.testing.assert_array_equal(amplitude_vector(0.05, ["gh", "u"]), [0.05, 0.05])
    with pytest.raises(InputError, match="unknown variable.*'?t2m"):
        amplitude_vector({"t2m": 0.1}, ["gh", "u"])
    with pytest.raises(InputError, match=">= 0"):
        amplitude_vector(-0.1, ["gh"])
    with pytest.raises(InputError, match="length_scale_km"):
        SphericalGaussian(GRID, np.ones(1), length_scale_km=0.0)


def test_bred_vectors_grow_along_the_unstable_direction_with_the_requested_amplitude():
    # a linear model that amplifies one pattern p tenfold per cycle and leaves the rest alone:
    # breeding must turn a random seed into (nearly) +-p, rescaled to the amplitude
    weights = lat_weights(GRID)
    lat = torch.as_tensor(np.deg2rad(GRID.lat), dtype=torch.float32)[:, None]
    lon = torch.as_tensor(np.deg2rad(GRID.lon), dtype=torch.float32)[None, :]
    pattern = (torch.cos(lat) ** 2 * torch.cos(3 * lon)).expand(2, -1, -1)
    pattern = pattern / weighted_rms(pattern, weights)[:, None, None]

    def project(x: torch.Tensor) -> torch.Tensor:
        return (x * pattern * weights[:, None]).mean(dim=(-2, -1), keepdim=True)

    def advance(x: torch.Tensor, cycle: int) -> torch.Tensor:
        return x + 9.0 * project(x) * pattern

    analysis = torch.randn(2, *GRID.shape, generator=gen(4))
    amplitude = np.array([0.1, 0.3])
    seed = SphericalGaussian(GRID, amplitude, length_scale_km=1500.0)
    state = analysis[None].expand(3, -1, -1, -1)
    seed_delta = seed(state, gen(5)) - state
    bred = BredVector(advance, lambda k: analysis, seed, amplitude, GRID, cycles=3)(state, gen(5))
    delta = bred - state
    np.testing.assert_allclose(weighted_rms(delta, weights).numpy(), np.broadcast_to(amplitude, (3, 2)), rtol=1e-4)
    alignment = (project(delta).squeeze() / torch.as_tensor(amplitude, dtype=torch.float32)).abs()
    seed_alignment = (project(seed_delta).squeeze() / torch.as_tensor(amplitude, dtype=torch.float32)).abs()
    assert float(alignment.min()) > 0.99
    assert float(seed_alignment.max()) < 0.9
    with pytest.raises(InputError, match="bred_cycles"):
        BredVector(advance, lambda k: analysis, seed, amplitude, GRID, cycles=0)


def test_data_spectrum_perturbations_have_the_data_spectrum_and_nothing_above_it():
    """A spectrum with power only up to l = 5 (variable 0) and l = 10 (variable 1): the
    perturbations carry none above those degrees, and each has the requested rms."""
    from forecast.rollout.perturbations import DataSpectrum, tendency_spectrum

    lmax = GRID.nlat
    spectrum = torch.zeros(2, lmax)
    spectrum[0, 1:6], spectrum[1, 1:11] = 1.0, torch.linspace(1.0, 0.1, 10)
    perturb = DataSpectrum(GRID, np.array([0.3, 0.1]), spectrum)
    state = torch.zeros(64, 2, GRID.nlat, GRID.nlon)
    out = perturb(state, gen(3))
    rms = weighted_rms(out, lat_weights(GRID))
    np.testing.assert_allclose(rms.numpy(), np.broadcast_to([0.3, 0.1], (64, 2)), rtol=1e-4)
    measured = tendency_spectrum(torch.stack([state, out], dim=1), GRID)   # power of out - state
    assert float(measured[0, 6:].sum()) < 1e-8 * float(measured[0].sum())
    assert float(measured[1, 11:].sum()) < 1e-8 * float(measured[1].sum())
    assert float(measured[1, 10]) > 0 and float(measured[0, 5]) > 0
    assert torch.equal(out, perturb(state, gen(3))) and not torch.equal(out, perturb(state, gen(4)))
