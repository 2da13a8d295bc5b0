"""The cap on the power per degree: its maths on fields whose spectrum is known, Parseval
against the grid's own quadrature, its place in a rollout, and the training spectrum a
checkpoint carries for it."""

import numpy as np
import pytest
import torch
from rollout_factories import TINY_MODEL, interrupt_rollout, make_checkpoint, make_swe_store, rollout_config
from torch_harmonics import InverseRealSHT, RealSHT

from forecast.models.spectral_cap import SpectralPowerCap, reference_power
from forecast.rollout import open_forecast, rollout
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.harmonics import degree_power
from pipelines.store import open_store

GRID = Grid.parse("legendre-gauss:16x32")


def field_of(coeffs: dict[tuple[int, int], complex], grid: Grid = GRID) -> torch.Tensor:
    """The real field ``(H, W)`` with the given orthonormal coefficients (l, m) -> value."""
    c = torch.zeros(grid.nlat, grid.nlat, dtype=torch.complex128)
    for (l, m), value in coeffs.items():
        c[l, m] = value
    return InverseRealSHT(grid.nlat, grid.nlon, lmax=grid.nlat, mmax=grid.nlat, grid=grid.kind).double()(c)


def test_power_per_degree_sums_to_the_fields_integral_over_the_sphere():
    """Parseval, checked with the grid's quadrature (independent of the transform)."""
    x = torch.randn(3, 2, GRID.nlat, GRID.nlon, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    power = reference_power(list(x), GRID)                                       # (C, L)
    area = torch.as_tensor(GRID.cell_area())                                     # sums to 4 pi
    # a random grid field is not band-limited: compare with its projection on the degrees
    sht = RealSHT(GRID.nlat, GRID.nlon, lmax=GRID.nlat, mmax=GRID.nlat, grid=GRID.kind).double()
    isht = InverseRealSHT(GRID.nlat, GRID.nlon, lmax=GRID.nlat, mmax=GRID.nlat, grid=GRID.kind).double()
    projected = isht(sht(x))
    integral = (projected**2 * area).sum((-1, -2)).mean(0)                       # (C,)
    np.testing.assert_allclose(power.sum(-1), integral.numpy(), rtol=1e-10)
    # a single harmonic's power sits at its degree: |a|^2 for m = 0, 2 |a|^2 for m > 0
    single = degree_power(sht(field_of({(4, 0): 0.5, (6, 3): 1.0 - 2.0j})))
    expected = np.zeros(GRID.nlat)
    expected[4], expected[6] = 0.25, 2 * 5.0
    np.testing.assert_allclose(single.numpy(), expected, atol=1e-12)


def test_degrees_above_the_cap_are_scaled_to_it_and_the_others_are_untouched():
    reference = np.ones((1, GRID.nlat))
    cap = SpectralPowerCap(GRID, reference, factor=2.0)
    x = field_of({(0, 0): 5.0, (3, 1): 0.5, (9, 0): 3.0, (9, 4): 1.0j}).float()[None, None]
    out = cap(x)
    sht = RealSHT(GRID.nlat, GRID.nlon, lmax=GRID.nlat, mmax=GRID.nlat, grid=GRID.kind)
    before, after = sht(x)[0, 0], sht(out)[0, 0]
    # degree 9 held 9 + 2 = 11 > 2: every coefficient scaled by sqrt(2 / 11), phases kept
    torch.testing.assert_close(after[9], before[9] * (2.0 / 11.0) ** 0.5, atol=1e-5, rtol=0)
    assert degree_power(after)[9].item() == pytest.approx(2.0, rel=1e-4)
    # degree 3 (power 0.5) and the mean (25, above the cap, but l = 0 is never capped) stay
    torch.testing.assert_close(after[[0, 3]], before[[0, 3]], atol=1e-5, rtol=0)
    # a state within the cap everywhere comes out bit-identical
    assert torch.equal(cap(x * 0.1), x * 0.1)


def test_members_and_variables_are_capped_each_at_its_own_reference():
    reference = np.array([np.full(GRID.nlat, 1.0), np.full(GRID.nlat, 100.0)])   # (C=2, L)
    cap = SpectralPowerCap(GRID, reference, factor=1.0)
    field = field_of({(5, 2): 3.0}).float()                                        # power 18 at l = 5
    x = torch.stack([torch.stack([field, field]), torch.stack([0.1 * field, field])])   # (B=2, C=2, H, W)
    sht = RealSHT(GRID.nlat, GRID.nlon, lmax=GRID.nlat, mmax=GRID.nlat, grid=GRID.kind)
    power = degree_power(sht(cap(x)))[..., 5]                                      # (B, C)
    np.testing.assert_allclose(power.numpy(), [[1.0, 18.0], [0.18, 18.0]], rtol=1e-4)


def test_bad_caps_are_refused():
    with pytest.raises(InputError, match="positive factor"):
        SpectralPowerCap(GRID, np.ones((1, GRID.nlat)), factor=0.0)
    with pytest.raises(InputError, match=r"\(variables, 16\)"):
        SpectralPowerCap(GRID, np.ones((1, 10)), factor=1.0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cap")
    store = make_swe_store(root / "store.zarr", n_times=24)
    opened = open_store(store)
    stats = opened.statistics.sel(variable=opened.variables)
    states = (np.stack([opened.data[v].values for v in opened.variables], 1)
              - stats["mean"].values[:, None, None]) / stats["std"].values[:, None, None]
    spectrum = reference_power(list(states), opened.grid)
    # an untrained model at full weight scale grows its state step by step: the cap has work to do
    return root, store, spectrum, make_checkpoint(root / "with.pt", store, power_spectrum=spectrum), \
        make_checkpoint(root / "without.pt", store)


def test_a_rollout_with_the_cap_keeps_every_degree_within_it(setup):
    root, store, spectrum, ckpt, _ = setup
    options = dict(perturbation={"kind": ["none"]}, lead="4h", members=2)
    free = open_forecast(rollout(rollout_config([ckpt], store, root / "free.zarr", **options)))
    capped = open_forecast(rollout(rollout_config([ckpt], store, root / "capped.zarr", spectral_cap=1.0, **options)))
    loose = open_forecast(rollout(rollout_config([ckpt], store, root / "loose.zarr", spectral_cap=1e30, **options)))
    variables = list(free.data_vars)
    mean, std = (open_store(store).statistics.sel(variable=variables)[k].values for k in ("mean", "std"))

    def powers(ds):   # (lead, member, C, L) of the normalised states
        x = np.stack([ds[v].isel(init_time=0).values for v in variables], 2)     # (member, lead, C, H, W)
        x = (x - mean[:, None, None]) / std[:, None, None]
        sht = RealSHT(GRID.nlat, GRID.nlon, lmax=GRID.nlat, mmax=GRID.nlat, grid=GRID.kind).double()
        return degree_power(sht(torch.as_tensor(x, dtype=torch.float64))).numpy()

    free_power, capped_power = powers(free), powers(capped)
    ceiling = spectrum[None, None, :, 1:]
    assert (free_power[:, -1, :, 1:] > 1.5 * ceiling[:, 0]).any()                 # the uncapped model exceeds it
    assert (capped_power[:, 1:, :, 1:] <= ceiling * (1 + 1e-3) + 1e-9).all()     # the capped one never does
    assert np.array_equal(powers(loose), free_power)                              # a cap never reached: no change
    assert __import__("json").loads(capped.attrs["provenance"])["config"]["spectral_cap"] == 1.0


def test_a_capped_stochastic_rollout_stopped_mid_way_resumes_bit_identically(setup, monkeypatch):
    """The cap draws nothing and depends on the state alone, so a resumed capped run of a
    noisy model restarts from the capped state it wrote and ends bit for bit as an
    uninterrupted one."""
    root, store, spectrum, _, _ = setup
    model = TINY_MODEL.model_copy(update={"noise_channels": 2})
    ckpt = make_checkpoint(root / "noisy.pt", store, model=model, noise_weight=0.5, power_spectrum=spectrum)
    options = dict(perturbation={"kind": ["none"]}, lead="4h", members=2, spectral_cap=1.0)

    def values(path):
        ds = open_forecast(path)
        return np.stack([ds[v].values for v in sorted(ds.data_vars)])

    reference = values(rollout(rollout_config([ckpt], store, root / "noisy_ref.zarr", **options)))
    uncapped = values(rollout(rollout_config([ckpt], store, root / "noisy_free.zarr",
                                             **{**options, "spectral_cap": None})))
    interrupt_rollout(rollout_config([ckpt], store, root / "noisy_resumed.zarr", **options), monkeypatch)
    resumed = values(rollout(rollout_config([ckpt], store, root / "noisy_resumed.zarr", **options)))
    assert resumed.tobytes() == reference.tobytes()
    assert not np.allclose(reference, uncapped)                  # the cap was at work
    assert np.ptp(reference[:, :, :, -1], axis=1).max() > 0      # (variable, member, init, lead, ...): members spread


def test_a_checkpoint_without_the_training_spectrum_is_refused_with_a_reason(setup):
    root, store, _, _, without = setup
    with pytest.raises(InputError, match="written before checkpoints carried that spectrum"):
        rollout(rollout_config([without], store, root / "refused.zarr", spectral_cap=2.0))
    assert not (root / "refused.zarr").exists()


def test_training_stores_the_mean_power_per_degree_of_its_states_in_the_checkpoint(tmp_path):
    """Parseval again: the spectrum sums to the states' mean square over the sphere."""
    from train_factories import cached_swe_store, tiny_train_config

    from forecast.checkpoint import load_checkpoint
    from forecast.train import train

    store = cached_swe_store(n_times=48, with_static=True)
    result = train(tiny_train_config(store, tmp_path / "run", max_steps=1))
    ckpt = load_checkpoint(result.checkpoint)
    grid = ckpt.grid
    assert ckpt.power_spectrum.shape == (len(ckpt.variables), grid.nlat)
    opened = open_store(store)
    states = (np.stack([opened.data[v].values for v in ckpt.variables], 1)
              - ckpt.mean[:, None, None]) / ckpt.std[:, None, None]                  # (T, C, H, W)
    mean_square = (states**2 * grid.cell_area()).sum((-1, -2)).mean(0)               # over all times
    # the training states are a subset of the store's times: the same climate within sampling
    np.testing.assert_allclose(ckpt.power_spectrum.sum(-1), mean_square, rtol=0.25)
    assert (ckpt.power_spectrum[:, 1:] > 0).all()
