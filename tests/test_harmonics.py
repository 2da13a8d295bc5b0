"""The spherical-harmonics helpers against analytic references: a single harmonic's power lands
in its degree with the value of its integral, Parseval's identity for the stated normalisation,
and the default truncation."""

import math

import numpy as np
import pytest
import torch
from torch_harmonics import InverseRealSHT

from pipelines import harmonics
from pipelines.grids import Grid

GRIDS = [Grid("legendre-gauss", 16, 32), Grid("equiangular", 17, 32)]


def _colat_lon(grid: Grid) -> tuple[torch.Tensor, torch.Tensor]:
    theta = torch.as_tensor(np.deg2rad(90.0 - grid.lat), dtype=torch.float64)[:, None]
    lam = torch.as_tensor(np.deg2rad(grid.lon), dtype=torch.float64)[None, :]
    return theta, lam


@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_a_single_harmonic_puts_its_integral_in_its_degree(grid):
    """f = cos(theta) is degree 1, sin(theta) cos(theta) sin(lambda) and sin(theta)^2 cos(2 lambda)
    are degree 2; P(l) is the integral of f^2 over the sphere: 4 pi/3, 4 pi/15, 16 pi/15."""
    theta, lam = _colat_lon(grid)
    cases = [(torch.cos(theta).expand(-1, grid.nlon), 1, 4 * math.pi / 3),
             (torch.sin(theta) * torch.cos(theta) * torch.sin(lam), 2, 4 * math.pi / 15),
             (torch.sin(theta) ** 2 * torch.cos(2 * lam), 2, 16 * math.pi / 15)]
    transform = harmonics.sht(grid).double()
    for field, degree, integral in cases:
        power = harmonics.degree_power(transform(field))
        assert power.shape == (grid.nlat,)
        assert power[degree].item() == pytest.approx(integral, rel=1e-10)
        others = power.clone()
        others[degree] = 0.0
        exact = harmonics.exact_lmax(grid)      # above it an equiangular grid aliases a little
        assert others[:exact].max().item() < 1e-12 * integral
        assert others.max().item() < 1e-5 * integral


def test_parseval_power_summed_over_degrees_is_4_pi_times_the_area_mean_square():
    grid = GRIDS[0]                                          # exact quadrature for band-limited fields
    g = torch.Generator().manual_seed(0)
    coeffs = torch.randn(3, grid.nlat, grid.nlat, 2, generator=g, dtype=torch.float64)
    coeffs = torch.view_as_complex(coeffs) * torch.tril(torch.ones(grid.nlat, grid.nlat, dtype=torch.float64))
    coeffs[..., 0] = coeffs[..., 0].real                     # m = 0 is real for a real field
    fields = InverseRealSHT(grid.nlat, grid.nlon, lmax=grid.nlat // 2, mmax=grid.nlat // 2,
                            grid=grid.kind).double()(coeffs[..., : grid.nlat // 2, : grid.nlat // 2])
    weights = torch.as_tensor(grid.latitude_weights, dtype=torch.float64)[:, None]    # mean 1 over latitudes
    mean_square = (fields**2 * weights).mean(dim=(-2, -1))
    power = harmonics.degree_power(harmonics.sht(grid).double()(fields))              # (3, L)
    torch.testing.assert_close(power.sum(-1), 4 * math.pi * mean_square, rtol=1e-12, atol=0)
    assert power[:, grid.nlat // 2:].abs().max() < 1e-12 * power.sum(-1).min()        # nothing above the band


@pytest.mark.parametrize("grid", GRIDS, ids=str)
def test_default_truncation_is_every_degree_and_no_order_above_it(grid):
    assert harmonics.truncation(grid) == (grid.nlat, min(grid.nlat, grid.nlon // 2 + 1))
    assert harmonics.truncation(grid, lmax=5) == (5, 5)
    assert harmonics.truncation(grid, lmax=5, mmax=6) == (5, 6)
    for transform in (harmonics.sht(grid), harmonics.inverse_sht(grid), harmonics.vector_sht(grid),
                      harmonics.inverse_vector_sht(grid)):
        assert (transform.lmax, transform.mmax) == harmonics.truncation(grid)
    assert harmonics.exact_lmax(grid) == (16 if grid.kind == "legendre-gauss" else 9)


def test_order_multiplicity_counts_the_2l_plus_1_harmonics_of_each_degree():
    g = harmonics.order_multiplicity(6, 4)
    assert g.shape == (6, 4)
    np.testing.assert_array_equal(g.sum(1), [1, 3, 5, 7, 7, 7])     # 2l + 1 up to the orders kept
    assert g[0, 0] == 1 and g[3, 2] == 2 and g[1, 2] == 0
