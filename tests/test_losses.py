"""The almost-fair CRPS training loss against `scores` (alpha = 1) and a brute-force double sum."""

from __future__ import annotations

import numpy as np
import pytest
import scores
import torch
import xarray as xr

from forecast.losses import AreaWeightedCRPS, SpectralCRPS, almost_fair_crps
from pipelines.errors import InputError
from pipelines.grids import Grid


def brute_force(members: np.ndarray, target: np.ndarray, alpha: float) -> np.ndarray:
    m = members.shape[1]
    eps = (1.0 - alpha) / m
    total = np.zeros(target.shape)
    for j in range(m):
        for k in range(m):
            if j != k:
                total += (np.abs(members[:, j] - target) + np.abs(members[:, k] - target)
                          - (1.0 - eps) * np.abs(members[:, j] - members[:, k]))
    return total / (2.0 * m * (m - 1))


@pytest.mark.parametrize("m", [2, 3, 7])
def test_alpha_one_is_the_fair_crps_of_scores(m):
    rng = np.random.default_rng(m)
    members, target = rng.normal(size=(5, m, 4, 6)), rng.normal(size=(5, 4, 6))
    ours = almost_fair_crps(torch.from_numpy(members), torch.from_numpy(target), alpha=1.0).numpy()
    fc = xr.DataArray(members, dims=("b", "member", "y", "x"))
    obs = xr.DataArray(target, dims=("b", "y", "x"))
    theirs = scores.probability.crps_for_ensemble(fc, obs, ensemble_member_dim="member", method="fair",
                                                  preserve_dims="all")
    np.testing.assert_allclose(ours, theirs.transpose("b", "y", "x").values, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("alpha", [0.95, 0.5])
def test_almost_fair_crps_equals_the_double_sum(alpha):
    rng = np.random.default_rng(1)
    members, target = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 5))
    ours = almost_fair_crps(torch.from_numpy(members), torch.from_numpy(target), alpha=alpha).numpy()
    np.testing.assert_allclose(ours, brute_force(members, target, alpha), rtol=1e-12)


def test_members_equal_to_rounding_are_tied_and_get_the_same_gradient():
    """An untrained noise-conditioned model gives every member the same state up to float
    rounding; the spread term must not pull them apart in a direction the rounding chose."""
    base = torch.randn(2, 1, 50, dtype=torch.float64) * 3.0
    third = base + 1.0   # a member well apart from the tied pair
    gradients = []
    for rounding in (1e-9, -1e-9):   # which twin rounds up decides a sort's order
        members = torch.cat([base, base * (1.0 + rounding), third], dim=1).requires_grad_(True)
        almost_fair_crps(members, torch.zeros(2, 50, dtype=torch.float64), alpha=0.95).sum().backward()
        assert members.grad is not None
        torch.testing.assert_close(members.grad[:, 0], members.grad[:, 1], rtol=0, atol=1e-12)
        gradients.append(members.grad.clone())
    torch.testing.assert_close(gradients[0], gradients[1], rtol=0, atol=1e-12)
    # the twins still feel the third member: the spread term pulls them away from it
    spread_only = gradients[0][:, 0] - torch.sign(base[:, 0]) / 3.0
    assert (spread_only * torch.sign(base[:, 0] - third[:, 0]) < 0).all()


def test_area_weighted_crps_weights_latitudes_and_has_gradients():
    grid = Grid.parse("legendre-gauss:8x16")
    loss = AreaWeightedCRPS(grid, np.ones(2), alpha=0.95)
    members = torch.randn(2, 3, 2, 8, 16, dtype=torch.float64, requires_grad=True)
    target = torch.randn(2, 2, 8, 16, dtype=torch.float64)
    value = loss(members, target)
    expected = (almost_fair_crps(members.detach(), target, 0.95)
                * torch.as_tensor(grid.latitude_weights)[:, None]).mean()
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    value.backward()
    assert members.grad is not None and torch.isfinite(members.grad).all() and members.grad.abs().sum() > 0
    with pytest.raises(InputError, match="at least 2 members"):
        loss(members[:, :1], target)


def _single_harmonic(grid: Grid, degree: int, order: int, amplitude: float) -> torch.Tensor:
    """The real field whose orthonormal SHT has ``amplitude`` at (degree, order) and 0 elsewhere."""
    from torch_harmonics import InverseRealSHT

    coeffs = torch.zeros(grid.nlat, grid.nlat, dtype=torch.complex128)
    coeffs[degree, order] = amplitude
    isht = InverseRealSHT(grid.nlat, grid.nlon, lmax=grid.nlat, mmax=grid.nlat, grid=grid.kind, norm="ortho")
    return isht(coeffs)


@pytest.mark.parametrize("order", [0, 3])
def test_spectral_crps_of_one_harmonic(order):
    """Members that are zero against a target holding one spherical harmonic of amplitude a:
    every member's amplitude misses by a at that (l, m) and nowhere else, so the term is
    a * g_m / sum(g) * L / sqrt(4 pi) (g_0 = 1, g_m = 2), per variable."""
    grid = Grid.parse("legendre-gauss:12x24")
    loss = SpectralCRPS(grid, np.ones(1), alpha=0.95)
    target = _single_harmonic(grid, 5, order, 0.7)[None, None]          # (B=1, C=1, H, W)
    members = torch.zeros(1, 2, 1, grid.nlat, grid.nlon, dtype=torch.float64)
    degree, m = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    g_total = np.where(degree >= m, np.where(m > 0, 2.0, 1.0), 0.0).sum()   # = L^2 = 144
    expected = 0.7 * (2.0 if order else 1.0) / g_total * 12 / np.sqrt(4 * np.pi)
    assert float(loss(members, target)) == pytest.approx(expected, rel=1e-4)


def test_spectral_crps_sees_power_the_pointwise_crps_cannot():
    """Two ensembles with the same pointwise CRPS (members at +-e around the truth): the one
    whose members carry e as small-scale noise is penalised by the spectral term, and the
    spectral term of a perfect ensemble is zero."""
    grid = Grid.parse("legendre-gauss:16x32")
    rng = np.random.default_rng(0)
    truth = _single_harmonic(grid, 2, 1, 3.0)[None, None].float()
    small = _single_harmonic(grid, 14, 9, 0.5)[None, None].float()
    large = _single_harmonic(grid, 2, 1, 0.5)[None, None].float()
    pointwise = AreaWeightedCRPS(grid, np.ones(1))
    combined = AreaWeightedCRPS(grid, np.ones(1), spectral_weight=1.0)
    noisy = torch.stack([truth + small, truth - small], dim=1)
    scaled = torch.stack([truth + large, truth - large], dim=1)
    assert float(combined.spectral(torch.stack([truth, truth], dim=1), truth)) == pytest.approx(0.0, abs=1e-6)
    # the members' amplitude at (14, 9) is 0.5 where the truth has none; at (2, 1) they straddle it
    assert float(combined(noisy, truth) - pointwise(noisy, truth)) > 5 * float(combined(scaled, truth) - pointwise(scaled, truth))
    members = torch.from_numpy(rng.normal(size=(2, 2, 1, 16, 32))).float().requires_grad_(True)
    combined(members, truth).backward()
    assert members.grad is not None and torch.isfinite(members.grad).all()
    with pytest.raises(InputError, match="spectral_weight"):
        AreaWeightedCRPS(grid, np.ones(1), spectral_weight=-1.0)


def test_normalised_spectral_crps_is_bounded_where_the_data_have_no_power():
    """The normalised term refers each degree to the training data's power there; a degree the
    data hold nothing at (the vorticity's zero global mean) is floored, so a small error there
    costs no more than the same error at an energetic degree would at the floor, not 1e8 times more."""
    grid = Grid.parse("legendre-gauss:12x24")
    reference = np.ones((1, 12))
    reference[0, 0] = 1e-17                                   # no power at l = 0 in the data
    loss = SpectralCRPS(grid, np.ones(1), alpha=0.95, reference=reference)
    target = torch.zeros(1, 1, grid.nlat, grid.nlon, dtype=torch.float64)
    at_zero = torch.stack([_single_harmonic(grid, 0, 0, 1e-3)[None]] * 2, dim=1)     # (1, 2, 1, H, W)
    at_five = torch.stack([_single_harmonic(grid, 5, 0, 1e-3)[None]] * 2, dim=1)
    ratio = float(loss(at_zero, target)) / float(loss(at_five, target))
    # floored at 1e-3 of the mean power (11 / 12): amplitude scale sqrt(1e-3 * 11 / 12) against
    # sqrt(1 / 11), and degree 0 has 1 coefficient where degree 5 spreads its weight over 11
    expected = np.sqrt(1 / 11) / np.sqrt(1e-3 * 11 / 12) * 11
    assert ratio == pytest.approx(expected, rel=1e-3)
    assert torch.isfinite(loss(at_zero, target))
