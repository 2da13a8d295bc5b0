"""The rollout workflow on a tiny grid: output format, seeds, skipping, blow-ups, mismatches, ensembles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from rollout_factories import TINY_MODEL, VARIABLES, interrupt_rollout, make_checkpoint, make_swe_store, rollout_config

from forecast.rollout import BlowUpError, open_forecast, parse_init_times, parse_lead, rollout
from forecast.rollout.initial import open_initial
from forecast.rollout.io import partial_path
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.store import open_store


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollout")
    store = make_swe_store(root / "store.zarr", n_times=24)
    return root, store, make_checkpoint(root / "a.pt", store, seed=0), make_checkpoint(root / "b.pt", store, seed=1)


def data(ds: xr.Dataset) -> np.ndarray:
    return np.stack([ds[v].values for v in VARIABLES])


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_output_format_and_attributes(setup, suffix):
    root, store, a, _ = setup
    out = rollout(rollout_config([a], store, root / f"format{suffix}",
                                 init_times=["2020-03-20T06", "2020-03-20T03"], lead="4h", output_every=2))
    ds = open_forecast(out)
    assert dict(ds.sizes) == {"member": 3, "init_time": 2, "lead_time": 3, "lat": 16, "lon": 32}
    assert list(ds.data_vars) == VARIABLES
    assert all(ds[v].dims == ("member", "init_time", "lead_time", "lat", "lon") for v in VARIABLES)
    assert ds["gh"].dtype == np.float32 and ds["member"].dtype == np.int32
    np.testing.assert_array_equal(ds["init_time"].values, pd.DatetimeIndex(["2020-03-20T03", "2020-03-20T06"]).values)
    np.testing.assert_array_equal(ds["lead_time"].values, pd.to_timedelta([0, 2, 4], unit="h").values)
    np.testing.assert_array_equal(ds["valid_time"].values, ds["init_time"].values[:, None] + ds["lead_time"].values)
    assert ds["gh"].attrs["units"] == "m" and ds["gh"].attrs["standard_name"] == "geopotential_height"
    assert ds["vo"].attrs["units"] == "s-1" and "long_name" in ds["u"].attrs
    assert ds["lat"].attrs["units"] == "degrees_north" and ds["lon"].attrs["standard_name"] == "longitude"
    assert ds["lead_time"].attrs["standard_name"] == "forecast_period"
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["grid"] == "legendre-gauss:16x32"
    assert int(ds.attrs["complete"]) == 1 and "history" in ds.attrs
    provenance = __import__("json").loads(ds.attrs["provenance"])
    assert provenance["checkpoints"][0]["sha256"] == a.with_name("a.pt.sha256").read_text().split()[0]
    assert provenance["seed"] == 1 and provenance["config"]["members"] == 3
    # lead 0 is the perturbed analysis, centred: the ensemble mean is the analysis itself
    analysis = open_store(store).data.sel(time=pd.Timestamp("2020-03-20T06"))
    lead0 = ds.sel(init_time="2020-03-20T06", lead_time=pd.Timedelta(0))
    for v in VARIABLES:
        std = float(analysis[v].std())
        tolerance = 1e-5 * std + 2e-6 * float(np.abs(analysis[v]).max())   # float32 rounding
        np.testing.assert_allclose(lead0[v].mean("member").values, analysis[v].values, rtol=0, atol=tolerance)
        assert float(lead0[v].std("member").mean()) > 0.01 * std
    assert np.isfinite(data(ds)).all()


def test_a_seed_makes_the_ensemble_bit_reproducible(setup):
    root, store, a, _ = setup
    first = data(open_forecast(rollout(rollout_config([a], store, root / "seed1.zarr", seed=5))))
    again = data(open_forecast(rollout(rollout_config([a], store, root / "seed2.zarr", seed=5))))
    other = data(open_forecast(rollout(rollout_config([a], store, root / "seed3.zarr", seed=6))))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_a_complete_output_is_skipped_refused_when_parameters_differ_or_overwritten(setup):
    root, store, a, _ = setup
    out = rollout(rollout_config([a], store, root / "skip.zarr"))
    stamp = (out / "zarr.json").stat().st_mtime_ns
    assert rollout(rollout_config([a], store, out)) == out     # the same parameters: skipped
    assert (out / "zarr.json").stat().st_mtime_ns == stamp
    with pytest.raises(InputError, match=r"skip\.zarr holds a complete forecast made with other parameters "
                                         r"\(members: 3 -> 2; seed: 1 -> 99\); pass --overwrite"):
        rollout(rollout_config([a], store, out, seed=99, members=2))
    assert (out / "zarr.json").stat().st_mtime_ns == stamp and open_forecast(out).attrs["seed"] == 1
    rollout(rollout_config([a], store, out, seed=99, overwrite=True))
    assert (out / "zarr.json").stat().st_mtime_ns != stamp
    assert open_forecast(out).attrs["seed"] == 99


def test_nan_stops_the_run_naming_where_and_keeps_the_complete_leads(setup):
    root, store, _, _ = setup
    poisoned = make_checkpoint(root / "nan.pt", store, poison=True)
    out = root / "nan.zarr"
    with pytest.raises(BlowUpError, match=r"NaN or inf.*init time 2020-03-20T06:00:00, member 0, lead time 1 h.*"
                                          r"variable 'gh'.*nan\.zarr\.partial"):
        rollout(rollout_config([poisoned], store, out))
    assert not out.exists()
    kept = open_forecast(partial_path(out))
    assert np.isfinite(data(kept.isel(lead_time=0))).all()
    assert np.isnan(data(kept.isel(lead_time=slice(1, None)))).all()


def test_values_outside_the_bounds_stop_the_run_at_the_first_bad_lead(setup):
    root, store, a, _ = setup
    free = open_forecast(rollout(rollout_config([a], store, root / "free.zarr", lead="6h", bounds_std=1e6)))
    stats = open_store(store).statistics.sel(variable=VARIABLES)
    mean, std = (stats[k].values.reshape(-1, 1, 1, 1, 1) for k in ("mean", "std"))
    excess = np.abs((data(free.isel(init_time=0)) - mean) / std).max(axis=(0, 1, 3, 4))   # per lead time
    bad_lead = next((k for k in range(1, excess.size) if excess[k] > excess[:k].max() * 1.001), None)
    assert bad_lead is not None, f"the untrained model's state does not grow: {excess}"
    limit = float(excess[:bad_lead].max() * 1.0005)
    out = root / "bounded.zarr"
    with pytest.raises(BlowUpError, match=fr"outside physical bounds.*lead time {bad_lead} h") as caught:
        rollout(rollout_config([a], store, out, lead="6h", bounds_std=limit))
    assert caught.value.step == bad_lead   # 1 h model steps: the step the benchmarks read
    kept = open_forecast(partial_path(out)).isel(init_time=0)
    assert np.array_equal(data(kept.isel(lead_time=slice(0, bad_lead))),
                          data(free.isel(init_time=0, lead_time=slice(0, bad_lead))))
    assert np.isnan(data(kept.isel(lead_time=slice(bad_lead, None)))).all()


def test_members_are_spread_round_robin_over_checkpoints_and_batching_does_not_matter(setup):
    root, store, a, b = setup
    none = {"kind": ["none"]}
    both = data(open_forecast(rollout(rollout_config([a, b], store, root / "ab.zarr", members=4, perturbation=none,
                                                     batch_members=1))))
    only_a = data(open_forecast(rollout(rollout_config([a], store, root / "a.zarr", members=1, perturbation=none))))
    only_b = data(open_forecast(rollout(rollout_config([b], store, root / "b.zarr", members=1, perturbation=none))))
    for m in range(4):
        np.testing.assert_allclose(both[:, m], (only_a if m % 2 == 0 else only_b)[:, 0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(only_a[:, 0, :, -1], only_b[:, 0, :, -1])


def test_mismatching_checkpoints_and_initial_conditions_are_refused(setup):
    root, store, a, _ = setup
    other_grid = make_checkpoint(root / "eq.pt", store, grid="equiangular:17x32")
    with pytest.raises(InputError, match=r"eq\.pt does not match"):
        rollout(rollout_config([a, other_grid], store, root / "mix.zarr"))
    with pytest.raises(InputError, match="on grid legendre-gauss:16x32.*trained on grid equiangular:17x32"):
        rollout(rollout_config([other_grid], store, root / "grid.zarr", regrid_method=None))
    extra = make_checkpoint(root / "t2m.pt", store, variables=["gh", "u", "v", "vo", "t2m"])
    with pytest.raises(InputError, match="needs variable.*t2m"):
        rollout(rollout_config([extra], store, root / "vars.zarr"))
    with pytest.raises(InputError, match="2021-01-01.*not in the initial conditions"):
        rollout(rollout_config([a], store, root / "time.zarr", init_times=["2021-01-01T00"]))
    with pytest.raises(InputError, match="kinds repeat"):
        rollout(rollout_config([a], store, root / "twice.zarr",
                               perturbation={"kind": ["spherical-gaussian", "spherical-gaussian"]}))
    with pytest.raises(InputError, match="bred_window_hours=1.5"):
        rollout(rollout_config([a], store, root / "window.zarr",
                               perturbation={"kind": ["bred-vector"], "bred_window_hours": 1.5}))
    assert not any(p.name.startswith(("mix", "grid", "vars", "time", "twice", "window")) for p in root.iterdir())


def test_bred_vector_ensembles_have_the_requested_amplitude_per_variable(setup):
    root, store, a, _ = setup
    perturbation = {"kind": ["bred-vector"], "amplitude": {"gh": 0.1, "u": 0.02}, "bred_cycles": 2,
                    "bred_window_hours": 2, "centre": False}
    ds = open_forecast(rollout(rollout_config([a], store, root / "bred.zarr", members=2, lead="1h",
                                              perturbation=perturbation)))
    analysis = open_store(store).data.sel(time=pd.Timestamp("2020-03-20T06"))
    stats = open_store(store).statistics
    weights = Grid.parse("legendre-gauss:16x32").area_weights()
    lead0 = ds.isel(init_time=0, lead_time=0)
    for v, amplitude in (("gh", 0.1), ("u", 0.02), ("v", 0.0), ("vo", 0.0)):
        delta = (lead0[v] - analysis[v]) / float(stats["std"].sel(variable=v))
        rms = np.sqrt((delta**2 * weights).mean(("lat", "lon"))).values
        np.testing.assert_allclose(rms, amplitude, rtol=2e-3, atol=1e-5)


def test_era5_files_on_another_grid_are_regridded_and_the_output_grid_can_differ(setup):
    root, store, a, _ = setup
    analysis = open_store(store).data.isel(time=slice(4, 8))
    era5 = (analysis.rename(time="valid_time", lat="latitude", lon="longitude")
            .assign_coords(longitude=((analysis["lon"].values + 180) % 360) - 180).sortby("longitude")
            .isel(latitude=slice(None, None, -1)))
    era5.to_netcdf(root / "era5.nc")
    same = open_initial(str(root / "era5.nc"), Grid.parse("legendre-gauss:16x32"), VARIABLES)
    np.testing.assert_allclose(same.fields(pd.Timestamp("2020-03-20T06")),
                               np.stack([analysis[v].sel(time="2020-03-20T06").values for v in VARIABLES]))
    coarse = Grid.parse("equiangular:9x16")
    xr.Dataset({v: analysis[v] for v in VARIABLES}).pipe(
        lambda ds: __import__("pipelines.regrid", fromlist=["regrid"]).regrid(ds, coarse)
    ).rename(time="valid_time", lat="latitude", lon="longitude").to_netcdf(root / "coarse.nc")
    out = rollout(rollout_config([a], store, root / "regridded.zarr", initial=str(root / "coarse.nc"),
                                 output_grid="equiangular:9x16"))
    ds = open_forecast(out)
    assert ds.sizes["lat"] == 9 and ds.sizes["lon"] == 16 and ds.attrs["grid"] == "equiangular:9x16"
    assert ds.attrs["model_grid"] == "legendre-gauss:16x32"
    np.testing.assert_allclose(ds["lat"].values, coarse.lat)
    gh0 = ds["gh"].isel(init_time=0, lead_time=0).mean("member")
    truth = open_initial(str(root / "coarse.nc"), coarse, VARIABLES).fields(pd.Timestamp("2020-03-20T06"))[0]
    assert float(np.abs(gh0.values - truth).mean()) < 0.2 * float(truth.std())   # regridded there and back


def test_parse_lead_and_init_times():
    hour = pd.Timedelta(hours=6)
    assert parse_lead("10d", hour) == 40 and parse_lead("72h", hour) == 12 and parse_lead("6h", hour) == 1
    assert parse_lead("1d12h", hour) == 6
    for bad, message in (("10", "units"), ("abc", "cannot parse"), ("5h", "multiple"), ("0h", "positive")):
        with pytest.raises(InputError, match=message):
            parse_lead(bad, hour)
    assert parse_init_times(["2020-01-02T00,2020-01-01T00", "2020-01-01T00"]) == [
        pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-02")]
    with pytest.raises(InputError, match="cannot parse init time 'yesterday'"):
        parse_init_times(["yesterday"])
    with pytest.raises(InputError, match="no init time"):
        parse_init_times([])


def test_bounds_check_names_the_member_and_variable():
    import torch

    from forecast.rollout import BoundsCheck

    check = BoundsCheck(["t2m", "u10"], mean=np.array([280.0, 0.0]), std=np.array([10.0, 5.0]), n_std=50.0,
                        bounds={"t2m": (150.0, 350.0)})
    state = torch.zeros(3, 2, 4, 8)
    assert check.violation(state) is None
    state[2, 0, 1, 1] = (351.0 - 280.0) / 10.0          # 351 K: inside 50 std, outside the physical bounds
    assert check.violation(state) == (2, "t2m", "values outside physical bounds")
    state[1, 1, 0, 0] = float("inf")
    assert check.violation(state) == (1, "u10", "NaN or inf")
    state[0, 1, 3, 7] = 51.0                              # beyond 50 std
    assert check.violation(state) == (0, "u10", "values outside physical bounds")
    with pytest.raises(InputError, match="unknown variable.*msl"):
        BoundsCheck(["t2m"], np.zeros(1), np.ones(1), 50.0, {"msl": (0.0, 1.0)})


def test_members_are_grouped_round_robin_then_chunked():
    from forecast.rollout import RolloutEngine

    engine = RolloutEngine([object(), object()], Grid.parse("legendre-gauss:16x32"), pd.Timedelta(hours=1),
                           None, batch_members=2, device="cpu")
    groups = [(k, members.tolist()) for k, members in engine.groups(torch.arange(7))]
    assert groups == [(0, [0, 2]), (0, [4, 6]), (1, [1, 3]), (1, [5])]
    # a block of members 3..5 (a work unit): positions in the block, models of the global indices
    block = [(k, members.tolist()) for k, members in engine.groups(torch.arange(3, 6))]
    assert block == [(0, [1]), (1, [0, 2])]
    with pytest.raises(InputError, match="batch_members"):
        RolloutEngine([object()], Grid.parse("legendre-gauss:16x32"), pd.Timedelta(hours=1), None, 0, "cpu")


def test_a_subset_of_variables_and_lead_times_is_the_full_run_thinned(setup):
    root, store, a, _ = setup
    full = open_forecast(rollout(rollout_config([a], store, root / "full.zarr", lead="4h")))
    thin = open_forecast(rollout(rollout_config([a], store, root / "thin.zarr", lead="4h", variables=["gh", "u"],
                                                output_every="2h")))
    assert list(thin.data_vars) == ["gh", "u"]
    assert (thin["lead_time"].values == full["lead_time"].values[::2]).all()
    for name in ("gh", "u"):
        np.testing.assert_array_equal(thin[name].values, full[name].values[:, :, ::2])
    with pytest.raises(InputError, match="variables msl are not the model's"):
        rollout(rollout_config([a], store, root / "bad.zarr", variables=["msl"]))
    with pytest.raises(InputError, match="lead '90min'|not a multiple"):
        rollout(rollout_config([a], store, root / "bad2.zarr", output_every="90min"))


def test_a_stochastic_model_spreads_the_members_and_the_seed_fixes_the_ensemble(setup):
    """No initial perturbation: the spread comes from the model's noise alone; the noise depends
    on seed, init time, member and valid time only: the same run gives the same bits, and
    another batching the same ensemble up to float32 rounding (matrix kernels may round
    differently for another batch size: seen on AMD EPYC)."""
    root, store, _, _ = setup
    model = TINY_MODEL.model_copy(update={"noise_channels": 2})
    ckpt = make_checkpoint(root / "stochastic.pt", store, model=model, weight_scale=0.3, noise_weight=0.5)
    none = {"kind": ["none"]}
    a = data(open_forecast(rollout(rollout_config([ckpt], store, root / "s1.zarr", perturbation=none))))
    b = data(open_forecast(rollout(rollout_config([ckpt], store, root / "s2.zarr", perturbation=none,
                                                  batch_members=1))))
    c = data(open_forecast(rollout(rollout_config([ckpt], store, root / "s3.zarr", perturbation=none, seed=2))))
    again = data(open_forecast(rollout(rollout_config([ckpt], store, root / "s4.zarr", perturbation=none))))
    assert a.tobytes() == again.tobytes()
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())
    assert np.array_equal(a[:, :, :, 0], c[:, :, :, 0])          # lead 0: the same unperturbed analysis
    assert not np.allclose(a[:, :, :, -1], c[:, :, :, -1])       # another seed, another ensemble
    spread = a[:, :, :, -1].std(axis=1)                          # (variable, init, lat, lon) over members
    assert np.all(np.ptp(a[:, :, :, 0], axis=1) == 0) and spread.mean() > 0   # identical at lead 0


@pytest.mark.parametrize("noise", [{}, {"noise_autocorrelation": 0.5, "noise_length_scales_km": [500.0, 3000.0]}],
                         ids=["white", "ar1-shaped"])
def test_a_stochastic_rollout_stopped_mid_way_resumes_bit_identically(setup, monkeypatch, noise):
    """The AR(1) noise carries no state: its past innovations are drawn again from their
    generators, so the resumed run draws what the uninterrupted one did."""
    root, store, _, _ = setup
    model = TINY_MODEL.model_copy(update={"noise_channels": 2, **noise})
    ckpt = make_checkpoint(root / f"stochastic2{len(noise)}.pt", store, model=model, weight_scale=0.3,
                           noise_weight=0.5)
    options = dict(perturbation={"kind": ["none"]}, lead="4h")
    reference = data(open_forecast(rollout(rollout_config([ckpt], store, root / f"ref{len(noise)}.zarr", **options))))
    interrupt_rollout(rollout_config([ckpt], store, root / f"resumed{len(noise)}.zarr", **options), monkeypatch)
    resumed = data(open_forecast(rollout(rollout_config([ckpt], store, root / f"resumed{len(noise)}.zarr",
                                                        **options))))
    assert resumed.tobytes() == reference.tobytes()
    assert np.ptp(resumed[:, :, :, -1], axis=1).max() > 0          # the members did spread


def test_noise_amplitude_widens_a_stochastic_ensemble(setup):
    """rollout.noise_amplitude widens the ensemble, is recorded, and is refused for a model that
    has no noise."""
    root, store, a, _ = setup
    model = TINY_MODEL.model_copy(update={"noise_channels": 2})
    ckpt = make_checkpoint(root / "stochastic_knobs.pt", store, model=model, weight_scale=0.3, noise_weight=0.5)
    options = dict(perturbation={"kind": ["none"]}, lead="2h")
    base = data(open_forecast(rollout(rollout_config([ckpt], store, root / "knobs_base.zarr", **options))))
    louder = open_forecast(rollout(rollout_config([ckpt], store, root / "knobs_loud.zarr", noise_amplitude=3.0,
                                                  **options)))
    spread = base[:, :, :, 1].std(axis=1).mean()
    assert spread > 0 and data(louder)[:, :, :, 1].std(axis=1).mean() > 1.5 * spread
    assert __import__("json").loads(louder.attrs["provenance"])["config"]["noise_amplitude"] == 3.0
    with pytest.raises(InputError, match="noise of a stochastic SFNO"):
        rollout(rollout_config([a], store, root / "knobs_plain.zarr", noise_amplitude=2.0))


def test_data_spectrum_perturbations_in_a_rollout_use_only_earlier_analyses(setup):
    root, store, a, _ = setup
    out = rollout(rollout_config([a], store, root / "ds.zarr",
                                 perturbation={"kind": ["data-spectrum"], "amplitude": 0.05}))
    lead0 = data(open_forecast(out).isel(lead_time=0))
    assert np.all(np.ptp(lead0, axis=1).max(axis=(-1, -2)) > 0)       # every variable perturbed
    with pytest.raises(InputError, match="data-spectrum needs analyses one model step apart"):
        rollout(rollout_config([a], store, root / "ds_first.zarr", init_times=["2020-03-20T00"],
                               perturbation={"kind": ["data-spectrum"], "amplitude": 0.05}))
