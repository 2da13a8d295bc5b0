"""Global-mean conservation: the correction's maths against numpy's own Gauss-Legendre
quadrature, that it touches only the global mean of the chosen variables, and its place in a
rollout (every lead keeps the initial mean where the free run drifts)."""

import json

import numpy as np
import pytest
import torch
from rollout_factories import make_checkpoint, make_swe_store, rollout_config
from torch_harmonics import RealSHT

from forecast.models.conservation import GlobalMeanConservation
from forecast.rollout import open_forecast, rollout
from pipelines.errors import InputError
from pipelines.grids import Grid

GRID = Grid.parse("legendre-gauss:16x32")


def area_mean(x: np.ndarray) -> np.ndarray:
    """Mean over the sphere of ``(..., H, W)`` fields on GRID, with numpy's Gauss-Legendre weights
    (independent of the grid's and torch-harmonics' quadrature); latitudes north to south."""
    _, w = np.polynomial.legendre.leggauss(GRID.nlat)   # symmetric, so the order does not matter
    return (x.mean(-1) * w).sum(-1) / w.sum()


def test_the_corrected_state_has_the_inputs_global_mean_and_nothing_else_changes():
    g = torch.Generator().manual_seed(0)
    before = torch.randn(3, 4, GRID.nlat, GRID.nlon, generator=g, dtype=torch.float64)
    # the output drifts in its mean by a different amount per member and variable, plus a pattern
    after = before + torch.randn(3, 4, 1, 1, generator=g, dtype=torch.float64) \
        + 0.3 * torch.randn(3, 4, GRID.nlat, GRID.nlon, generator=g, dtype=torch.float64)
    fixed = GlobalMeanConservation(GRID, [0, 3])(after, before)
    np.testing.assert_allclose(area_mean(fixed[:, [0, 3]].numpy()), area_mean(before[:, [0, 3]].numpy()), atol=1e-12)
    assert not np.allclose(area_mean(after[:, [0, 3]].numpy()), area_mean(before[:, [0, 3]].numpy()), atol=1e-3)
    assert torch.equal(fixed[:, [1, 2]], after[:, [1, 2]])            # the other variables are untouched
    # the change is a constant field: every degree l >= 1 is as it was
    sht = RealSHT(GRID.nlat, GRID.nlon, lmax=GRID.nlat, mmax=GRID.nlat, grid=GRID.kind).double()
    torch.testing.assert_close(sht(fixed)[..., 1:, :], sht(after)[..., 1:, :], atol=1e-12, rtol=0)
    change = (fixed - after)[:, [0, 3]]
    torch.testing.assert_close(change, change[..., :1, :1].expand_as(change), atol=1e-12, rtol=0)


def test_intermediate_states_are_each_corrected_to_the_steps_input():
    g = torch.Generator().manual_seed(1)
    before = torch.randn(2, 3, GRID.nlat, GRID.nlon, generator=g)
    after = torch.randn(2, 5, 3, GRID.nlat, GRID.nlon, generator=g) + torch.arange(5.0)[None, :, None, None, None]
    fixed = GlobalMeanConservation(GRID, [1])(after, before)
    np.testing.assert_allclose(area_mean(fixed[:, :, 1].double().numpy()),
                               np.repeat(area_mean(before[:, 1].double().numpy())[:, None], 5, 1), atol=1e-5)
    assert torch.equal(fixed[:, :, [0, 2]], after[:, :, [0, 2]])


def test_no_variable_and_mismatched_states_are_refused():
    with pytest.raises(InputError, match="at least one variable"):
        GlobalMeanConservation(GRID, [])
    with pytest.raises(ValueError, match="do not match"):
        GlobalMeanConservation(GRID, [0])(torch.zeros(1, 3, 16, 32), torch.zeros(1, 2, 16, 32))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("conserve")
    store = make_swe_store(root / "store.zarr", n_times=24)
    # an untrained model at full weight scale changes the state's mean at every step
    return root, store, make_checkpoint(root / "model.pt", store)


def test_a_rollout_keeps_the_initial_global_mean_of_the_conserved_variables(setup):
    root, store, ckpt = setup
    options = dict(perturbation={"kind": ["none"]}, lead="4h", members=2)
    free = open_forecast(rollout(rollout_config([ckpt], store, root / "free.zarr", **options)))
    kept = open_forecast(rollout(rollout_config([ckpt], store, root / "kept.zarr",
                                                conserve_global_mean=["gh", "vo"], **options)))
    for name in ("gh", "vo"):
        initial = kept[name].isel(init_time=0, lead_time=0)                                         # lead 0: the initial state
        start = area_mean(initial.values.astype(np.float64))                                       # (member,)
        scale = float(np.abs(initial).mean())
        kept_means = area_mean(kept[name].isel(init_time=0).values.astype(np.float64))              # (member, lead)
        free_means = area_mean(free[name].isel(init_time=0).values.astype(np.float64))
        np.testing.assert_allclose(kept_means, np.repeat(start[:, None], kept_means.shape[1], 1), atol=1e-5 * scale)
        assert np.abs(free_means[:, -1] - start).max() > 1e-3 * scale             # the free run drifts
    # the first step of a variable not conserved is the free run's, bit for bit
    assert np.array_equal(kept["u"].isel(init_time=0, lead_time=1).values, free["u"].isel(init_time=0, lead_time=1).values)
    assert json.loads(kept.attrs["provenance"])["config"]["conserve_global_mean"] == ["gh", "vo"]


def test_an_unknown_conserved_variable_is_refused_before_anything_is_written(setup):
    root, store, ckpt = setup
    out = root / "bad.zarr"
    with pytest.raises(InputError, match=r"conserve_global_mean names t2m, not the model's variables; it has gh, u"):
        rollout(rollout_config([ckpt], store, out, conserve_global_mean=["gh", "t2m"]))
    assert not out.exists()
