"""The almost-fair CRPS training loss against `scores` (alpha = 1) and a brute-force double sum."""

from __future__ import annotations

import numpy as np
import pytest
import scores
import torch
import xarray as xr

from forecast.losses import AreaWeightedCRPS, almost_fair_crps
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
