"""Spherical DYffusion: cold sampling, step conditioning, seeded inference dropout, the two
training stages, checkpoints, and rollouts with intermediate states that resume bit-identically."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from rollout_factories import VARIABLES, interrupt_rollout, make_checkpoint, rollout_config
from train_factories import cached_swe_store, tiny_train_config

from forecast.checkpoint import load_checkpoint, load_model
from forecast.config import ModelConfig, TrainConfig
from forecast.models import InferenceOptions, build_model
from forecast.models.dyffusion import DYffusion, cold_sample
from forecast.models.layers import DropoutMasks
from forecast.models.sfno import SFNO
from forecast.rollout import RolloutEngine, open_forecast, rollout
from forecast.train import train
from pipelines.errors import InputError
from pipelines.grids import Grid

GRID = Grid.parse("legendre-gauss:16x32")
DYFFUSION = ModelConfig(architecture="dyffusion", embed_dim=8, num_layers=2, scale_factor=1, mlp_dropout=0.1,
                        drop_path_rate=0.1)
TRAIN = {"model": {"architecture": "dyffusion", "mlp_dropout": 0.1, "drop_path_rate": 0.1}, "step_hours": 6}


def _model(config: ModelConfig = DYFFUSION, horizon: int = 3, seed: int = 0,
           options: InferenceOptions = InferenceOptions()) -> DYffusion:
    torch.manual_seed(seed)
    model = build_model(config, GRID, 3, 2, options)
    model.set_horizon(horizon)
    with torch.no_grad():   # "trained" step modulations, so that the step matters
        for name, p in model.named_parameters():
            if ".step." in name:
                p.normal_(0.0, 0.3)
    return model.eval()


def _inputs(batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, GRID.nlat, GRID.nlon, generator=g), torch.randn(batch, 2, GRID.nlat, GRID.nlon, generator=g)


def _noise(model: DYffusion, seeds: list[int]) -> torch.Tensor:
    return model.draw_noise([torch.Generator().manual_seed(s) for s in seeds])


# -- cold sampling --------------------------------------------------------------------------------
def test_cold_sampling_with_a_perfect_interpolator_walks_the_straight_line_to_the_forecast():
    """F always answers y and I interpolates linearly: then s_n = x0 + n/h (y - x0) exactly."""
    h = 5
    x0, y = torch.randn(2, 7, dtype=torch.float64), torch.randn(2, 7, dtype=torch.float64)

    def interpolator(a, b, i):
        return a + (i.to(a.dtype) / h)[:, None] * (b - a)

    path = cold_sample(x0, h, lambda s, n: y.clone(), interpolator, intermediate=True)
    expected = torch.stack([x0 + n / h * (y - x0) for n in range(1, h + 1)], dim=1)
    torch.testing.assert_close(path, expected, rtol=0, atol=1e-12)


def test_cold_sampling_reproduces_the_hand_written_formula_on_a_toy_nonlinear_pair():
    """The loop of NOTES.md written out term by term, one interpolator call at a time:
    xhat = F(s_n, n); s_{n+1} = s_n + I(x0, xhat, n+1) - I(x0, xhat, n), I(., ., 0) = s_0, I(., xhat, h) = xhat."""
    h = 4
    x0 = torch.randn(3, 5, dtype=torch.float64)
    calls = {"F": 0, "I": 0}

    def forecaster(s, n):
        calls["F"] += 1
        return 0.6 * s + 0.1 * (n.to(s.dtype)[:, None] + 1.0) + 0.05 * s**2

    def interpolator(a, b, i):
        calls["I"] += int(a.shape[0])
        i = i.to(a.dtype)[:, None]
        return a + (i / h) * (b - a) + 0.03 * i * (h - i) * torch.sin(a + b)

    path = cold_sample(x0, h, forecaster, interpolator, intermediate=True)

    def F(s, n):
        return 0.6 * s + 0.1 * (n + 1.0) + 0.05 * s**2

    def I(a, b, i):  # noqa: E743 (the paper's name)
        return a + (i / h) * (b - a) + 0.03 * i * (h - i) * torch.sin(a + b)

    s, expected = x0.clone(), []
    for n in range(h):
        xhat = F(s, n)
        now = x0 if n == 0 else I(x0, xhat, n)
        nxt = xhat if n == h - 1 else I(x0, xhat, n + 1)
        s = s + nxt - now
        expected.append(s)
    torch.testing.assert_close(path, torch.stack(expected, dim=1), rtol=0, atol=1e-12)
    assert calls == {"F": h, "I": 2 * (h - 1) * x0.shape[0]}     # 3h - 2 network calls per model step
    torch.testing.assert_close(cold_sample(x0, h, forecaster, interpolator), path[:, -1], rtol=0, atol=0)


# -- step conditioning ------------------------------------------------------------------------------
def test_step_conditioning_changes_the_output_and_is_ignored_when_switched_off():
    x = torch.randn(2, 5, GRID.nlat, GRID.nlon)
    torch.manual_seed(0)
    plain = SFNO(GRID, 3, 2, embed_dim=8, num_layers=2, scale_factor=1).eval()
    torch.manual_seed(0)
    conditioned = SFNO(GRID, 3, 2, embed_dim=8, num_layers=2, scale_factor=1, step_conditioning=True).eval()
    missing, unexpected = conditioned.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("step_embedding.") or ".step." in k for k in missing)
    one, two = torch.full((2,), 1), torch.full((2,), 2)
    with torch.no_grad():
        assert torch.equal(plain.network(x, step=one), plain.network(x))                  # off: the step is ignored
        assert torch.equal(conditioned.network(x, step=one), plain.network(x))            # zero-initialised modulation
        for name, p in conditioned.named_parameters():
            if ".step." in name:
                p.normal_(0.0, 0.3)
        a, b = conditioned.network(x, step=one), conditioned.network(x, step=two)
    assert (a - b).abs().max() > 1e-3
    assert not torch.equal(conditioned.network(x, step=torch.tensor([1, 2]))[0], b[0])    # per-sample steps
    torch.testing.assert_close(conditioned.network(x, step=torch.tensor([1, 2]))[1], b[1])


# -- seeded dropout at inference ----------------------------------------------------------------------
def test_interpolator_dropout_stays_on_at_inference_and_is_seeded_per_member():
    model = _model()
    state, forcings = _inputs()
    assert model.stochastic and not model.training
    with torch.no_grad():
        a = model(state, forcings, _noise(model, [1, 2, 3, 4]))
        again = model(state, forcings, _noise(model, [1, 2, 3, 4]))
        other = model(state, forcings, _noise(model, [5, 6, 7, 8]))
        halves = torch.cat([model(state[:2], forcings[:2], _noise(model, [1, 2])),
                            model(state[2:], forcings[2:], _noise(model, [3, 4]))])
        same_state = model(state[:1].expand(4, -1, -1, -1), forcings[:1].expand(4, -1, -1, -1), _noise(model, [1, 2, 3, 4]))
        mean_field = model(state, forcings)
    assert torch.equal(a, again)                                           # seeded
    # the masks follow the member, not the batch (only GEMM rounding changes with the batch size)
    torch.testing.assert_close(a, halves, rtol=1e-4, atol=1e-4)
    assert (a - other).abs().amax(dim=(1, 2, 3)).min() > 1e-4              # every member changed with the seed
    assert same_state.std(dim=0).mean() > 1e-4                              # one state, four different members
    assert torch.equal(mean_field, model(state, forcings))                 # no noise: dropout off, deterministic
    assert not _model(DYFFUSION.model_copy(update={"mlp_dropout": 0.0, "drop_path_rate": 0.0})).stochastic


def test_member_masks_are_the_same_at_every_step_and_multiply_the_fresh_ones():
    x = torch.ones(2, 20_000)
    fresh = [torch.Generator().manual_seed(s) for s in (1, 2)]
    step1 = DropoutMasks(fresh, [torch.Generator().manual_seed(s) for s in (7, 8)], member_rate=0.5).apply(x, 0.2, True)
    fresh = [torch.Generator().manual_seed(s) for s in (3, 4)]     # the next step: new fresh masks, the same members'
    step2 = DropoutMasks(fresh, [torch.Generator().manual_seed(s) for s in (7, 8)], member_rate=0.5).apply(x, 0.2, True)
    for y in (step1, step2):
        assert abs((y > 0).float().mean().item() - 0.8 * 0.5) < 0.01      # keep (1 - p)(1 - q)
        assert torch.all(y[y > 0] == 1.0 / 0.4)                           # survivors scaled by 1 / keep
    both = ((step1 > 0) & (step2 > 0)).float().mean().item()
    assert abs(both - 0.8 * 0.8 * 0.5) < 0.01          # independent masks would share 0.16 of the elements
    with pytest.raises(ValueError, match="member mask generators"):
        DropoutMasks(fresh, fresh[:1], member_rate=0.5)


def test_member_dropout_gives_each_member_one_network_for_its_whole_forecast():
    model = _model(DYFFUSION.model_copy(update={"mlp_dropout": 0.0, "drop_path_rate": 0.0}),
                   options=InferenceOptions(member_dropout=0.3))
    state, forcings = _inputs()
    assert model.stochastic

    def step_noise(step: int, member_seeds: tuple[int, ...] = (11, 12, 13, 14)) -> torch.Tensor:
        def generators_at(lag):
            seeds = member_seeds if lag is None else [100 * step + s for s in range(4)]
            return [torch.Generator().manual_seed(s) for s in seeds]
        return model.step_noise(lambda lag: model.draw_noise(generators_at(lag)))

    assert step_noise(0).shape == (4, 2)       # this step's seed and the member's
    with torch.no_grad():
        first, later = model(state, forcings, step_noise(0)), model(state, forcings, step_noise(5))
        others = model(state, forcings, step_noise(0, (21, 22, 23, 24)))
        plain = _model(DYFFUSION.model_copy(update={"mlp_dropout": 0.0, "drop_path_rate": 0.0}))(state, forcings)
    assert torch.equal(first, later)            # no fresh dropout: the member's masks alone, the same every step
    assert (first - others).abs().amax(dim=(1, 2, 3)).min() > 1e-4      # other members, other networks
    assert (first - plain).abs().amax(dim=(1, 2, 3)).min() > 1e-4       # and not the network without masks
    torch.testing.assert_close(model(state, forcings), plain)             # no noise: no masks at all
    # the rollout engine names the member's seed by the member alone: the same at every valid time
    engine = RolloutEngine([model], GRID, pd.Timedelta(hours=1), None, batch_members=4, device="cpu")
    ids = torch.arange(4)
    at_0, at_5 = (engine._noise(0, ids, pd.Timestamp("2020-01-01") + pd.Timedelta(hours=h), 9) for h in (0, 5))
    assert torch.equal(at_0[:, 1], at_5[:, 1]) and not torch.equal(at_0[:, 0], at_5[:, 0])
    assert len(set(at_0[:, 1].tolist())) == 4
    with pytest.raises(InputError, match="member_dropout=0.2 is an inference dropout of a DYffusion"):
        build_model(ModelConfig(), GRID, 3, 2, InferenceOptions(member_dropout=0.2))
    with pytest.raises(ValueError, match="member_dropout"):   # an inference option, not the model's
        TrainConfig(store="s.zarr", model={**DYFFUSION.model_dump(), "member_dropout": 0.2})


def test_gradients_reach_both_networks_through_the_sampling_loop():
    model = _model().train()
    state, forcings = _inputs(batch=2)
    model(state, forcings, _noise(model, [1, 2])).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_a_model_without_states_between_its_steps_is_refused():
    with pytest.raises(InputError, match="finer time step"):
        build_model(DYFFUSION, GRID, 3, 2).set_horizon(1)
    with pytest.raises(InputError, match="no horizon yet"):
        build_model(DYFFUSION, GRID, 3, 2)(*_inputs())
    with pytest.raises(ValueError, match="use loss 'mse' and ensemble_members 1"):
        TrainConfig(model=DYFFUSION, loss="crps", ensemble_members=2)
    with pytest.raises(InputError, match="noise_channels"):
        build_model(DYFFUSION.model_copy(update={"noise_channels": 2}), GRID, 3, 2)


# -- training ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store() -> Path:
    return cached_swe_store(n_times=48, with_static=True)


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_both_stages_learn_and_the_checkpoint_carries_both_networks(store, tmp_path):
    config = tiny_train_config(store, tmp_path / "run", epochs=3, lr=3e-3, **TRAIN)
    result = train(config)
    per_stage = len(result.losses) // 2
    for name, losses in (("interpolator", result.losses[:per_stage]), ("forecaster", result.losses[per_stage:])):
        first, last = np.mean(losses[:3]), np.mean(losses[-3:])
        assert last < 0.6 * first, f"{name}: loss fell from {first:.3g} only to {last:.3g}"
    ckpt = load_checkpoint(result.checkpoint)
    assert ckpt.time_step_seconds == 6 * 3600 and ckpt.epoch == 5 and ckpt.step == result.step
    assert {k.split(".")[0] for k in ckpt.model_state} >= {"interpolator", "forecaster"}
    model, _ = load_model(result.checkpoint, torch.device("cpu"))
    assert isinstance(model, DYffusion) and model.horizon == 6 and not model.training
    for name, value in ckpt.model_state.items():
        assert torch.equal(model.state_dict()[name], value), name
    # the forecaster stage left the interpolator as the interpolator stage made it
    mid = tiny_train_config(store, tmp_path / "mid", epochs=3, lr=3e-3, max_steps=per_stage, **TRAIN)
    interpolator_only = load_checkpoint(train(mid).checkpoint)
    for name, value in interpolator_only.model_state.items():
        if name.startswith("interpolator."):
            assert torch.equal(ckpt.model_state[name], value), name
        elif name.startswith("forecaster.") and not name.endswith("residual_scale"):   # a parameter
            assert not torch.equal(ckpt.model_state[name], value), name


@pytest.mark.parametrize("stop", [5, 16], ids=["mid-interpolator", "at-the-stage-change"])
def test_training_resumes_exactly_across_the_stage_change(store, tmp_path, stop):
    # rollout_steps and the curriculum of configs/train.yaml do not apply: each stage learns one model step
    common = dict(epochs=2, forecaster_epochs=1, checkpoint_every=4, seed=3, input_noise=0.05, rollout_steps=2,
                  curriculum_epochs=1, **TRAIN)
    full = train(tiny_train_config(store, tmp_path / "full", **common))
    part = tiny_train_config(store, tmp_path / "part", max_steps=stop, **common)
    first = train(part)
    assert first.step == stop
    second = train(part.model_copy(update={"max_steps": None}), resume=True)
    assert second.step == full.step == 24
    assert first.losses + second.losses == full.losses
    assert _rows(tmp_path / "part") == _rows(tmp_path / "full")
    assert {row["rollout_steps"] for row in _rows(tmp_path / "full")} == {"1"}


# -- rollouts -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rollout_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dyffusion-rollout")
    store = cached_swe_store(n_times=24)
    model = DYFFUSION.model_copy(update={"num_layers": 1})
    ckpt = make_checkpoint(root / "dyffusion.pt", store, model=model, weight_scale=0.3, horizon=3)
    return root, store, ckpt


def _data(path: Path) -> np.ndarray:
    ds = open_forecast(path)
    return np.stack([ds[v].values for v in VARIABLES])


NONE = {"kind": ["none"]}


def test_a_rollout_writes_the_interpolated_states_and_its_spread_comes_from_the_dropout(rollout_setup):
    root, store, ckpt = rollout_setup
    options = dict(perturbation=NONE, lead="6h", init_times=["2020-03-20T03"])
    steps = rollout(rollout_config([ckpt], store, root / "steps.zarr", **options))
    hourly = rollout(rollout_config([ckpt], store, root / "hourly.zarr", intermediate=True, **options))
    single = rollout(rollout_config([ckpt], store, root / "single.zarr", intermediate=True, batch_members=1, **options))
    assert pd.TimedeltaIndex(open_forecast(steps)["lead_time"].values).equals(pd.to_timedelta([0, 3, 6], unit="h"))
    leads = pd.TimedeltaIndex(open_forecast(hourly)["lead_time"].values)
    assert leads.equals(pd.to_timedelta(range(7), unit="h"))
    a, b = _data(steps), _data(hourly)
    assert a.tobytes() == b[:, :, :, ::3].tobytes()               # the model steps are the same, bit for bit
    np.testing.assert_allclose(_data(single), b, rtol=1e-4, atol=1e-4 * np.abs(b).max())   # masks follow members
    assert np.all(np.ptp(b[:, :, :, 0], axis=1) == 0)            # one analysis, no initial perturbation
    assert np.ptp(b[:, :, :, 1], axis=1).max() > 0               # spread from the first interpolated hour on
    other = _data(rollout(rollout_config([ckpt], store, root / "seed2.zarr", seed=2, **options)))
    assert not np.array_equal(a[:, :, :, -1], other[:, :, :, -1])
    # a higher inference dropout than the training rate (0.1) widens the ensemble
    wider = _data(rollout(rollout_config([ckpt], store, root / "wider.zarr", dropout=0.5, **options)))
    assert wider[:, :, :, -1].std(axis=1).mean() > 1.5 * a[:, :, :, -1].std(axis=1).mean()


def test_intermediate_states_need_a_dyffusion_checkpoint_and_every_store_step(rollout_setup):
    root, store, ckpt = rollout_setup
    sfno = make_checkpoint(root / "sfno.pt", store)
    with pytest.raises(InputError, match="architecture dyffusion"):
        rollout(rollout_config([sfno], store, root / "x.zarr", intermediate=True))
    for key in ("dropout", "member_dropout"):
        with pytest.raises(InputError, match=f"rollout {key}=0.3 is an inference dropout of a DYffusion"):
            rollout(rollout_config([sfno], store, root / "z.zarr", **{key: 0.3}))
    with pytest.raises(InputError, match="output_every"):
        rollout(rollout_config([ckpt], store, root / "y.zarr", intermediate=True, lead="6h", output_every=2))


@pytest.mark.parametrize("member_dropout", [None, 0.3])
def test_a_dyffusion_rollout_stopped_mid_way_resumes_bit_identically(rollout_setup, monkeypatch, member_dropout):
    root, store, ckpt = rollout_setup
    options = dict(perturbation=NONE, lead="9h", init_times=["2020-03-20T03"], intermediate=True,
                   member_dropout=member_dropout)
    name = f"m{member_dropout}"
    reference = _data(rollout(rollout_config([ckpt], store, root / f"ref{name}.zarr", **options)))
    interrupt_rollout(rollout_config([ckpt], store, root / f"resumed{name}.zarr", **options), monkeypatch)
    resumed = _data(rollout(rollout_config([ckpt], store, root / f"resumed{name}.zarr", **options)))
    assert resumed.tobytes() == reference.tobytes()
    if member_dropout:   # the member masks change the forecast: the same rollout without them differs
        plain = _data(rollout(rollout_config([ckpt], store, root / "plain.zarr", **options | {"member_dropout": None})))
        assert not np.array_equal(plain[:, :, :, -1], reference[:, :, :, -1])
