"""Grids: quadrature against analytic integrals, parsing, detection from coordinates."""

import math

import numpy as np
import pytest
import xarray as xr
from scipy.special import sph_harm_y

from pipelines.errors import InputError
from pipelines.grids import Grid, standardise_latlon

GRIDS = ["legendre-gauss:32x64", "equiangular:33x64", "equiangular:181x360", "legendre-gauss:64x128"]


def _integrate(grid: Grid, field: np.ndarray) -> float:
    return float((field * grid.cell_area()).sum())


@pytest.mark.parametrize("spec", GRIDS)
def test_weights_sum_to_sphere_area(spec):
    grid = Grid.parse(spec)
    assert grid.cell_area().sum() == pytest.approx(4 * math.pi, rel=1e-12)
    assert grid.cell_area(radius=2.0).sum() == pytest.approx(16 * math.pi, rel=1e-12)
    assert float(grid.area_weights().mean()) == pytest.approx(1.0, rel=1e-12)
    assert grid.quadrature_weights.sum() == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize("spec", ["legendre-gauss:32x64", "equiangular:33x64"])
@pytest.mark.parametrize("l,m", [(0, 0), (3, 0), (5, 3), (10, 7)])
def test_spherical_harmonic_integrals(spec, l, m):
    """|Y_lm|^2 integrates to 1 (orthonormal), Y_lm itself to sqrt(4 pi) for l=0 and 0 otherwise."""
    grid = Grid.parse(spec)
    theta, phi = np.meshgrid(grid.colat, np.deg2rad(grid.lon), indexing="ij")
    y = sph_harm_y(l, m, theta, phi)
    assert _integrate(grid, np.abs(y) ** 2) == pytest.approx(1.0, abs=1e-10)
    expected = math.sqrt(4 * math.pi) if l == 0 else 0.0
    assert _integrate(grid, y.real) == pytest.approx(expected, abs=1e-10)


def test_legendre_gauss_polynomial_exactness():
    grid = Grid.parse("legendre-gauss:8x16")
    z = np.cos(grid.colat)[:, None] * np.ones((1, grid.nlon))
    # int z^2 dOmega = 4 pi / 3, int z^14 dOmega = 4 pi / 15 (degree 14 < 2 * 8)
    assert _integrate(grid, z**2) == pytest.approx(4 * math.pi / 3, abs=1e-12)
    assert _integrate(grid, z**14) == pytest.approx(4 * math.pi / 15, abs=1e-12)


def test_coordinates_and_order():
    grid = Grid.parse("equiangular:181x360")
    assert grid.lat[0] == pytest.approx(90.0) and grid.lat[-1] == pytest.approx(-90.0)
    assert np.all(np.diff(grid.lat) < 0)
    assert grid.lon[0] == 0.0 and grid.lon[-1] == pytest.approx(359.0)
    coords = grid.coords()
    assert coords["lat"].attrs["units"] == "degrees_north"
    assert coords["lon"].attrs["standard_name"] == "longitude"
    assert str(grid) == "equiangular:181x360"
    assert Grid.parse(" legendre-gauss : 64 x 128 ") == Grid("legendre-gauss", 64, 128)


@pytest.mark.parametrize("bad", ["gaussian:64x128", "legendre-gauss:64", "64x128", "equiangular:1x360"])
def test_parse_rejects_bad_specs(bad):
    with pytest.raises(InputError, match="grid"):
        Grid.parse(bad)


def _dataset(grid: Grid, ascending: bool, lon_180: bool) -> xr.Dataset:
    lat = grid.lat[::-1] if ascending else grid.lat
    lon = grid.lon.copy()
    if lon_180:
        lon = np.where(lon >= 180, lon - 360, lon)
        lon = np.sort(lon)
    values = np.sin(np.deg2rad(lat))[:, None] + np.cos(np.deg2rad(lon))[None, :]
    return xr.Dataset({"f": (("latitude", "longitude"), values)}, coords={"latitude": lat, "longitude": lon})


@pytest.mark.parametrize("spec", ["legendre-gauss:16x32", "equiangular:19x36"])
def test_detection_whatever_order_and_convention(spec):
    grid = Grid.parse(spec)
    era5 = _dataset(grid, ascending=False, lon_180=False)
    flipped = _dataset(grid, ascending=True, lon_180=True)
    assert Grid.from_coords(era5) == grid
    assert Grid.from_coords(flipped) == grid
    a, b = standardise_latlon(era5), standardise_latlon(flipped)
    np.testing.assert_allclose(a["lat"], grid.lat)
    np.testing.assert_allclose(b["lon"], grid.lon)
    xr.testing.assert_allclose(a["f"], b["f"])


def test_detection_errors_name_the_problem():
    grid = Grid.parse("equiangular:19x36")
    ds = _dataset(grid, False, False)
    with pytest.raises(InputError, match="latitude"):
        Grid.from_coords(ds.rename(latitude="y"))
    with pytest.raises(InputError, match="longitudes are not a global regular grid"):
        Grid.from_coords(ds.isel(longitude=slice(0, 20)))
    with pytest.raises(InputError, match="match neither"):
        Grid.from_coords(ds.isel(latitude=slice(1, 18)))
