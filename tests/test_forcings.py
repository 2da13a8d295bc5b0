"""Forcings: solar zenith angle at known places and times, encodings, static normalisation."""

import numpy as np
import pytest

from forecast.forcings import compute_forcings, cos_solar_zenith, forcing_names, normalise_static, time_encodings
from pipelines.errors import InputError
from pipelines.grids import Grid
from train_factories import static_fields


def _cos_zenith(time: str, lat: float, lon: float) -> float:
    return float(cos_solar_zenith(np.array([np.datetime64(time)]), np.array([lat]), np.array([lon]))[0, 0, 0])


def test_subsolar_point_at_equinox_noon():
    # March equinox 2020 at 03:50 UTC; at 12:00 UTC the sun is overhead near (0N, ~0E)
    assert _cos_zenith("2020-03-20T12:00", 0.0, 0.0) == pytest.approx(1.0, abs=2e-3)
    # six hours later it is overhead 90 degrees further west, and on the horizon at lon 0
    assert _cos_zenith("2020-03-20T18:00", 0.0, 270.0) == pytest.approx(1.0, abs=2e-3)
    # (the equation of time, about -7.5 min in March, keeps it 1.9 degrees above the horizon)
    assert _cos_zenith("2020-03-20T18:00", 0.0, 0.0) == pytest.approx(np.sin(np.deg2rad(1.9)), abs=0.005)


def test_solstices_and_polar_night():
    # June solstice: sun overhead on the Tropic of Cancer at local solar noon
    assert _cos_zenith("2021-06-21T12:00", 23.44, 0.0) == pytest.approx(1.0, abs=2e-3)
    # polar night: the sun never rises at 80N in late December, nor at 80S in late June
    for hour in range(0, 24, 3):
        assert _cos_zenith(f"2020-12-21T{hour:02d}:00", 80.0, 30.0) <= 0.0
        assert _cos_zenith(f"2020-06-21T{hour:02d}:00", -80.0, 200.0) <= 0.0
    # midnight at the equator: the sun is straight below
    assert _cos_zenith("2020-03-20T00:00", 0.0, 0.0) == pytest.approx(-1.0, abs=2e-3)


def test_time_encodings_are_periodic():
    times = np.array(["2020-01-01T00:00", "2020-01-01T06:00", "2021-01-01T00:00"], dtype="datetime64[ns]")
    enc = time_encodings(times)
    np.testing.assert_allclose(enc[1, 2:], [1.0, 0.0], atol=1e-12)           # 06 UTC: quarter day
    np.testing.assert_allclose(enc[0, 2:], enc[2, 2:], atol=1e-12)
    np.testing.assert_allclose(enc[0, :2], [0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(np.hypot(enc[:, 0], enc[:, 1]), 1.0)


def test_compute_forcings_shapes_and_static():
    grid = Grid.parse("legendre-gauss:8x16")
    names, static = normalise_static(static_fields(grid), grid)
    assert names == ["lsm", "z_surface"]
    w = grid.area_weights().values[:, None]
    np.testing.assert_allclose((static * w).mean(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose((static**2 * w).mean(axis=(1, 2)), 1.0, atol=1e-5)
    times = np.array(["2020-01-01T00:00", "2020-01-01T06:00"], dtype="datetime64[ns]")
    f = compute_forcings(grid, times, static)
    assert f.shape == (2, len(forcing_names(names)), 8, 16) and f.dtype.is_floating_point
    np.testing.assert_array_equal(f[1, 5:].numpy(), static)
    np.testing.assert_allclose(f[:, 0].numpy(), cos_solar_zenith(times, grid.lat, grid.lon), rtol=1e-6)
    with pytest.raises(InputError, match="static fields have shape"):
        compute_forcings(grid, times, static[:, :4])
