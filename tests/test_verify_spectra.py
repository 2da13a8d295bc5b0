"""Power spectra through the SHT: a single harmonic, Parseval, ratios, laziness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from torch_harmonics import InverseRealSHT

from forecast.verify import power_spectrum, spectrum_ratio
from pipelines.grids import Grid

GRIDS = [Grid("legendre-gauss", 16, 32), Grid("equiangular", 17, 32)]


def synthesise(grid: Grid, coeffs: torch.Tensor) -> xr.DataArray:
    """Field on ``grid`` from orthonormal coefficients ``(lmax, mmax)``."""
    isht = InverseRealSHT(grid.nlat, grid.nlon, grid=grid.kind, norm="ortho").double()
    return xr.DataArray(isht(coeffs).numpy(), dims=("lat", "lon"), coords=grid.coords(), attrs={"units": "m"})


def band_limited(grid: Grid, lmax: int, seed: int = 0) -> tuple[xr.DataArray, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    isht = InverseRealSHT(grid.nlat, grid.nlon, grid=grid.kind, norm="ortho")
    c = torch.randn(isht.lmax, isht.mmax, dtype=torch.complex128, generator=gen)
    c = torch.tril(c)
    c[:, 0] = c[:, 0].real
    c[lmax:] = 0
    return synthesise(grid, c), c


@pytest.mark.parametrize("grid", GRIDS, ids=str)
@pytest.mark.parametrize(("l", "m"), [(0, 0), (3, 0), (5, 2), (7, 7)])
def test_single_harmonic_has_power_only_at_its_degree(grid: Grid, l: int, m: int) -> None:
    isht = InverseRealSHT(grid.nlat, grid.nlon, grid=grid.kind, norm="ortho")
    c = torch.zeros(isht.lmax, isht.mmax, dtype=torch.complex128)
    c[l, m] = 1.0 if m == 0 else (0.6 + 0.8j)
    p = power_spectrum(synthesise(grid, c), grid)
    expected = np.zeros(p.sizes["wavenumber"])
    expected[l] = 1.0 if m == 0 else 2.0  # m > 0 stands for +m and -m
    # the equiangular (Clenshaw-Curtis) analysis is exact for l + l' < nlat only: the top
    # degrees alias slightly; Legendre-Gauss is exact everywhere
    exact = slice(None) if grid.kind == "legendre-gauss" else slice(0, grid.nlat - l)
    np.testing.assert_allclose(p.values[exact], expected[exact], atol=1e-10)
    np.testing.assert_allclose(p.values, expected, atol=1e-4)
    assert p.attrs["units"] == "m2 sr"


@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_parseval_sum_of_power_is_integral_of_square(grid: Grid) -> None:
    f, _ = band_limited(grid, lmax=grid.nlat // 3)
    integral = float((f**2 * grid.cell_area()).sum())  # quadrature of f^2 over the sphere
    # exact on Legendre-Gauss; the equiangular analysis leaks a little into the top degrees
    rel = 1e-10 if grid.kind == "legendre-gauss" else 1e-5
    assert float(power_spectrum(f, grid).sum()) == pytest.approx(integral, rel=rel)
    # and 4 pi times the project's area-weighted mean
    assert integral == pytest.approx(4 * np.pi * float((f**2 * grid.area_weights()).mean()), rel=1e-12)


def test_ratio_is_one_for_the_same_field_and_small_for_a_blurred_one() -> None:
    grid = GRIDS[0]
    f, c = band_limited(grid, lmax=12)
    damp = torch.exp(-(torch.arange(c.shape[0], dtype=torch.float64) / 4.0) ** 2)[:, None]
    blurred = synthesise(grid, c * damp)
    np.testing.assert_allclose(spectrum_ratio(f, f, grid).isel(wavenumber=slice(0, 12)), 1.0, rtol=1e-10)
    ratio = spectrum_ratio(blurred, f, grid)
    np.testing.assert_allclose(ratio.isel(wavenumber=slice(0, 12)), damp[:12, 0].numpy() ** 2, rtol=1e-8)
    assert np.isnan(spectrum_ratio(f, 0.0 * f, grid)).all()  # a truth without power gives NaN, not inf


def test_dask_lazy_with_extra_dims_and_nan_fields() -> None:
    grid = GRIDS[1]
    fields = xr.concat([band_limited(grid, 5, seed=s)[0] for s in range(4)], dim="time")
    fields[2, 0, 0] = np.nan
    lazy = power_spectrum(fields.chunk({"time": 1}), grid)
    assert lazy.chunks is not None
    eager = power_spectrum(fields, grid)
    np.testing.assert_allclose(lazy.compute(), eager, rtol=1e-10, atol=1e-20)
    assert np.isnan(eager[2]).all() and np.isfinite(eager[[0, 1, 3]]).all()
    assert power_spectrum(fields.to_dataset(name="gh"))["gh"].dims == ("time", "wavenumber")  # grid from coords


def test_bands_split_the_resolved_degrees_and_ratios_sum_power_per_band() -> None:
    from forecast.verify.spectra import band_power_ratios, degree_bands

    truth = np.concatenate([[5.0], np.full(21, 2.0), np.full(10, 1e-12)])   # resolves l = 1..21 of 0..31
    assert degree_bands(truth) == [(1, 7), (8, 14), (15, 21)]
    assert degree_bands(truth, parts=2) == [(1, 11), (12, 21)]
    forecast = truth.copy()
    forecast[0] = 100.0            # the mean is in no band
    forecast[3] = 16.0             # band 1: (6 * 2 + 16) / 14 = 2
    forecast[15:22] = 0.5          # band 3: 3.5 / 14 = 0.25
    forecast[25] = 7.0             # above the resolved degrees: in no band
    assert band_power_ratios(forecast, truth, degree_bands(truth)) == pytest.approx([2.0, 1.0, 0.25])
    assert degree_bands(np.zeros(8)) == []
