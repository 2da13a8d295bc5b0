"""Training: both models learn, exact resume, schedules, dry run and input errors."""

import csv
from pathlib import Path

import pytest
import torch

from forecast.checkpoint import load_checkpoint
from forecast.train import lr_factor, rollout_steps_for_epoch, train
from pipelines.errors import InputError
from train_factories import cached_swe_store, tiny_train_config


@pytest.fixture(scope="module")
def store() -> Path:
    return cached_swe_store(n_times=48, with_static=True)


@pytest.mark.parametrize("architecture", ["sfno", "afno"])
def test_model_learns_on_shallow_water(store, tmp_path, architecture):
    config = tiny_train_config(store, tmp_path / "run", architecture, epochs=4, lr=3e-3)
    result = train(config)
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < 0.5 * first, f"{architecture}: loss fell from {first:.3g} only to {last:.3g}"
    assert set(result.val_metrics) == {"val_loss", "val_rmse_gh", "val_rmse_u", "val_rmse_v", "val_rmse_vo"}
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.step == result.step == 4 * 9 and ckpt.variables == ["gh", "u", "v", "vo"]
    assert ckpt.static_names == ["lsm", "z_surface"] and ckpt.static.shape == (2, 16, 32)


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("ensemble", [{}, {"model": {"noise_channels": 2, "noise_autocorrelation": 0.5},
                                          "loss": "crps", "ensemble_members": 2, "crps_spectral_weight": 0.1}],
                         ids=["mse", "crps-ar1-spectral"])
def test_resume_continues_exactly(store, tmp_path, ensemble):
    """Stop at step 5 (mid-epoch), resume to 13 (crossing the epoch and the curriculum change)."""
    common = dict(epochs=3, rollout_steps=2, curriculum_epochs=1, checkpoint_every=4, seed=3, input_noise=0.05,
                  **ensemble)
    full = train(tiny_train_config(store, tmp_path / "full", max_steps=13, **common))
    part = tiny_train_config(store, tmp_path / "part", max_steps=5, **common)
    first = train(part)
    assert first.step == 5 and load_checkpoint(tmp_path / "part/checkpoints/latest.pt").batch_in_epoch == 5
    second = train(part.model_copy(update={"max_steps": 13}), resume=True)
    assert second.step == 13
    assert first.losses + second.losses == full.losses
    assert _rows(tmp_path / "part") == _rows(tmp_path / "full")
    assert [r["rollout_steps"] for r in _rows(tmp_path / "full")] == ["1"] * 9 + ["2"] * 4
    with pytest.raises(InputError, match="already holds a training run"):
        train(part)


def test_schedules():
    assert [rollout_steps_for_epoch(e, 4, 2) for e in range(7)] == [1, 1, 2, 3, 4, 4, 4]
    assert [rollout_steps_for_epoch(e, 1, 0) for e in range(3)] == [1, 1, 1]
    assert lr_factor(0, 4, 100) == pytest.approx(0.25) and lr_factor(3, 4, 100) == pytest.approx(1.0)
    assert lr_factor(52, 4, 100) == pytest.approx(0.5) and lr_factor(100, 4, 100) == pytest.approx(0.0)


def test_dry_run_reports_size(store, tmp_path, capsys):
    result = train(tiny_train_config(store, tmp_path / "dry"), dry_run=True)
    out = capsys.readouterr().out
    assert result.n_parameters > 0 and result.flops_per_step > 0
    assert f"parameters: {result.n_parameters:,}" in out and "FLOPs per step" in out
    assert not (tmp_path / "dry").exists()


@pytest.mark.parametrize("overrides, message", [
    ({"step_hours": 1.5}, "not a positive multiple"),
    ({"batch_size": 64}, "fewer than batch_size"),
    ({"variables": ["gh", "t2m"]}, "no statistics for t2m"),
    ({"variable_weights": {"q": 2.0}}, "not trained variables"),
])
def test_bad_input_is_one_line_error(store, tmp_path, overrides, message):
    with pytest.raises(InputError, match=message):
        train(tiny_train_config(store, tmp_path / "bad", **overrides))


def test_resume_without_checkpoint_is_refused(store, tmp_path):
    with pytest.raises(InputError, match="nothing to resume"):
        train(tiny_train_config(store, tmp_path / "none"), resume=True)


def test_input_noise_is_reproducible_per_sample_and_epoch(store):
    from forecast.train import load_run_data

    data = load_run_data(tiny_train_config(store, Path("unused")))
    train_set = data.splits.train
    clean = train_set[3]["state"]
    clean_targets = train_set[3]["targets"].clone()
    train_set.set_input_noise(0.1, seed=7)
    noisy = train_set[3]["state"]
    assert torch.equal(noisy, train_set[3]["state"])                      # same sample, same noise
    assert float((noisy - clean).std()) == pytest.approx(0.1, rel=0.1)
    train_set.set_epoch(1)
    assert not torch.equal(noisy, train_set[3]["state"])                  # a new epoch draws anew
    assert torch.equal(train_set[3]["targets"], clean_targets)            # targets stay clean


def test_equator_mirror_flips_half_the_samples_with_each_variables_parity(store):
    import numpy as np

    from forecast.data import mirror_parity
    from forecast.train import load_run_data

    data = load_run_data(tiny_train_config(store, Path("unused")))
    clean = [data.splits.train[i] for i in range(len(data.splits.train))]
    parities = {v: (-1 if v in ("v", "vo") else 1) for v in data.variables}
    parity = mirror_parity(data.variables, parities)
    train_set = load_run_data(tiny_train_config(store, Path("unused"), equator_mirror=parities)).splits.train
    mean, std = np.asarray(data.normaliser.mean).reshape(-1), np.asarray(data.normaliser.std).reshape(-1)
    mirrored = 0
    for i, before in enumerate(clean):
        after = train_set[i]
        assert torch.equal(after["state"], train_set[i]["state"])          # the coin depends on seed, epoch, sample
        if torch.equal(after["state"], before["state"]):
            continue
        mirrored += 1
        # in physical units: the state at latitude -phi, times the parity
        for key in ("state", "targets"):
            phys_before = before[key].numpy() * std[:, None, None] + mean[:, None, None]
            phys_after = after[key].numpy() * std[:, None, None] + mean[:, None, None]
            np.testing.assert_allclose(phys_after, parity[:, None, None] * phys_before[..., ::-1, :], rtol=1e-5,
                                       atol=1e-5 * np.abs(phys_before).max())
        assert torch.equal(after["forcings"], before["forcings"])
    assert 0 < mirrored < len(clean)
    # the offset: with means far from zero (the data's v and vo are near it), physical units still mirror
    from forecast.normalise import Normaliser

    shifted = Normaliser(mean + 3.0 * std, std)
    train_set.set_equator_mirror(parity, shifted)
    i = next(i for i in range(len(clean)) if not torch.equal(train_set[i]["state"], clean[i]["state"]))
    phys_before = clean[i]["state"].numpy() * std[:, None, None] + shifted.mean[:, None, None]
    phys_after = train_set[i]["state"].numpy() * std[:, None, None] + shifted.mean[:, None, None]
    np.testing.assert_allclose(phys_after, parity[:, None, None] * phys_before[..., ::-1, :], rtol=1e-5,
                               atol=1e-5 * np.abs(phys_before).max())
    with pytest.raises(InputError, match="missing: u, v, vo"):   # refused before a run writes anything
        load_run_data(tiny_train_config(store, Path("unused"), equator_mirror={"gh": 1}))
    with pytest.raises(InputError, match="missing: vo"):
        mirror_parity(["gh", "vo"], {"gh": 1})
    with pytest.raises(InputError, match="1 or -1"):
        mirror_parity(["gh"], {"gh": 2})


def test_residual_scale_is_the_tendency_std_and_travels_in_the_checkpoint(store, tmp_path):
    import numpy as np

    from forecast.checkpoint import load_model
    from forecast.data import tendency_scale
    from forecast.train import load_run_data

    config = tiny_train_config(store, tmp_path / "run", max_steps=2)
    data = load_run_data(config)
    scale = tendency_scale(data.splits.train)
    # independent recomputation over every training pair
    w = data.grid.area_weights().values[:, None]
    starts = data.splits.train.starts
    diff = np.asarray(data.splits.train.states[starts + data.step], dtype=np.float64) - \
        np.asarray(data.splits.train.states[starts], dtype=np.float64)
    expected = np.sqrt((w * diff**2).mean(axis=(2, 3)).mean(axis=0))
    np.testing.assert_allclose(scale, expected, rtol=1e-6)
    assert (scale < 1).all()  # one step changes a normalised field by less than its std
    result = train(config)
    model, _ = load_model(result.checkpoint)
    np.testing.assert_allclose(model.residual_scale.numpy(), scale, rtol=1e-6)


def test_training_leaves_the_process_wide_torch_settings_as_it_found_them(store, tmp_path):
    before = torch.are_deterministic_algorithms_enabled()
    assert before is False   # pytest's default; the run must not leave it switched on
    train(tiny_train_config(store, tmp_path / "run", max_steps=2))
    assert torch.are_deterministic_algorithms_enabled() is before


def test_a_stochastic_sfno_trained_on_the_crps_learns_to_spread(store, tmp_path):
    """Two members per sample on the almost-fair CRPS: the loss falls and the noise modulations,
    zero at the start, are trained (the model's members no longer coincide)."""
    from forecast.checkpoint import load_model

    config = tiny_train_config(store, tmp_path / "crps", epochs=4, lr=3e-3, model={"noise_channels": 2},
                               loss="crps", ensemble_members=2)
    result = train(config)
    first, last = sum(result.losses[:3]) / 3, sum(result.losses[-3:]) / 3
    assert last < 0.7 * first, f"CRPS fell from {first:.3g} only to {last:.3g}"
    model, ckpt = load_model(result.checkpoint)
    modulations = [p for name, p in model.named_parameters() if ".noise." in name]
    assert modulations and max(float(p.abs().max()) for p in modulations) > 1e-4
    state = torch.zeros(1, 4, 16, 32)
    forcings = torch.zeros(1, model.n_forcing, 16, 32)
    with torch.no_grad():
        a = model(state, forcings, model.draw_noise([torch.Generator().manual_seed(1)]))
        b = model(state, forcings, model.draw_noise([torch.Generator().manual_seed(2)]))
    assert not torch.allclose(a, b)
