r"""Regridding between global grids: conservative, bilinear and spectral.

All three are linear maps :math:`x_{\mathrm{src}}(\ldots, n_{lat}, n_{lon}) \to
x_{\mathrm{tgt}}(\ldots, n'_{lat}, n'_{lon})` applied lazily, one dask chunk (one time
step) at a time, through :func:`xarray.apply_ufunc`.

Conservative (first order)
--------------------------
Cells are bounded in :math:`\mu = \sin\varphi` by the cumulative quadrature weights of
each grid, :math:`\mu_{j+1/2} = 1 - \sum_{i \le j} w_i` (so a cell's area is exactly
its quadrature weight :math:`w_j \, 2\pi/n_{lon}`), and in longitude half-way between
points. On the sphere the area of the intersection of two such cells is
:math:`\Delta\mu \, \Delta\lambda`, so the map factorises into a latitude and a
longitude overlap matrix (the approach of xarray-regrid),

.. math:: y = A_{\mu} \, x \, A_{\lambda}^T, \qquad
          (A_\mu)_{ij} = |[\mu_i] \cap [\mu_j]| / w'_i ,

and :math:`\sum_i w'_i y_i = \sum_j w_j x_j` exactly: the quadrature mean is conserved
to rounding. xarray-regrid 0.4.2 is not used for this because it puts cell edges at
mid-points and weights latitudes by a median spacing, which is wrong on Gauss grids and
at the poles: it conserves the mean only to ~1e-2 (Legendre-Gauss -> equiangular, with
NaN rows at the poles) to ~4e-4 (1 degree -> 8x16), against the 1e-6 goal.

Bilinear
--------
Linear in latitude (degrees) and periodic linear in longitude; when the source has no
pole rows (Legendre-Gauss) each pole is given the zonal mean of the nearest row.

Spectral
--------
The forward transform on the source grid and the inverse on the target grid
(:mod:`pipelines.harmonics`), truncated triangularly at
:math:`l_{max} = \min(L_{src}, L_{tgt})` with :math:`L` the degrees each grid's quadrature
resolves exactly (:func:`pipelines.harmonics.exact_lmax`: :math:`n_{lat}` on Legendre-Gauss,
:math:`\lceil n_{lat}/2 \rceil` on equiangular grids), :math:`m_{max} = \min(l_{max}, n_{lon}/2 + 1)`
of both grids.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np
import xarray as xr

from pipelines import harmonics
from pipelines.errors import InputError
from pipelines.grids import Grid

METHODS = ("conservative", "bilinear", "spectral")


class Regridder:
    """Base class: maps arrays ``(..., nlat, nlon)`` from ``source`` to ``target``."""

    def __init__(self, source: Grid, target: Grid) -> None:
        self.source = source
        self.target = target

    def apply(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, ds: xr.Dataset) -> xr.Dataset:
        """Regrid every variable with ``lat``/``lon`` dims of ``ds`` (lazily if dask-backed).

        ``ds`` must be on ``self.source`` with lat N -> S and lon 0 -> 360; the result
        is float64 on ``self.target`` with its CF coordinates.
        """
        out = {}
        for name, da in ds.data_vars.items():
            if "lat" not in da.dims or "lon" not in da.dims:
                out[name] = da
                continue
            out[name] = xr.apply_ufunc(
                self.apply, da, input_core_dims=[["lat", "lon"]], output_core_dims=[["lat", "lon"]],
                exclude_dims={"lat", "lon"}, dask="parallelized", output_dtypes=[np.float64],
                dask_gufunc_kwargs={"output_sizes": {"lat": self.target.nlat, "lon": self.target.nlon}},
                keep_attrs=True,
            ).transpose(*da.dims)
        result = xr.Dataset(out, attrs=ds.attrs)
        return result.drop_vars(["lat", "lon"], errors="ignore").assign_coords(self.target.coords())


class SeparableRegridder(Regridder):
    r"""``y = W_lat @ x @ W_lon.T`` with dense ``W_lat (n'_lat, n_lat)``, ``W_lon (n'_lon, n_lon)``."""

    w_lat: np.ndarray
    w_lon: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.einsum("ij,...jk,lk->...il", self.w_lat, x, self.w_lon, optimize=True)


def mu_bounds(grid: Grid) -> np.ndarray:
    """Cell edges in :math:`\\mu = \\sin(lat)`, ``(nlat + 1,)`` from 1 to -1, cell widths = quadrature weights."""
    edges = 1.0 - np.concatenate([[0.0], np.cumsum(grid.quadrature_weights)])
    edges[-1] = -1.0
    return edges


def _overlap(top_t: np.ndarray, bot_t: np.ndarray, top_s: np.ndarray, bot_s: np.ndarray) -> np.ndarray:
    """Lengths of intersections of intervals ``[bot, top]``, ``(n_t, n_s)``."""
    return np.clip(np.minimum(top_t[:, None], top_s[None, :]) - np.maximum(bot_t[:, None], bot_s[None, :]), 0, None)


def periodic_overlap(n_target: int, n_source: int) -> np.ndarray:
    """Fraction of each target longitude cell covered by each source cell, ``(n_t, n_s)``, rows sum to 1."""
    dt, ds = 360.0 / n_target, 360.0 / n_source
    ct, cs = np.arange(n_target) * dt, np.arange(n_source) * ds
    total = np.zeros((n_target, n_source))
    for shift in (-360.0, 0.0, 360.0):   # a cell may wrap around the 0/360 meridian
        total += _overlap(ct + dt / 2, ct - dt / 2, cs + ds / 2 + shift, cs - ds / 2 + shift)
    return total / dt


class ConservativeRegridder(SeparableRegridder):
    """First-order conservative: area-weighted average of the source cells overlapping each target cell."""

    def __init__(self, source: Grid, target: Grid) -> None:
        super().__init__(source, target)
        ms, mt = mu_bounds(source), mu_bounds(target)
        self.w_lat = _overlap(mt[:-1], mt[1:], ms[:-1], ms[1:]) / target.quadrature_weights[:, None]
        self.w_lon = periodic_overlap(target.nlon, source.nlon)


def linear_weights(x_target: np.ndarray, x_source: np.ndarray) -> np.ndarray:
    """Linear interpolation matrix ``(n_t, n_s)`` for increasing ``x_source`` covering ``x_target``."""
    j = np.clip(np.searchsorted(x_source, x_target, side="right") - 1, 0, x_source.size - 2)
    frac = np.clip((x_target - x_source[j]) / (x_source[j + 1] - x_source[j]), 0.0, 1.0)
    w = np.zeros((x_target.size, x_source.size))
    rows = np.arange(x_target.size)
    w[rows, j] += 1.0 - frac
    w[rows, j + 1] += frac
    return w


class BilinearRegridder(SeparableRegridder):
    """Bilinear in (latitude, longitude) degrees; periodic in longitude, zonal-mean poles added if missing."""

    def __init__(self, source: Grid, target: Grid) -> None:
        super().__init__(source, target)
        self.add_poles = source.kind != "equiangular"
        lat = np.concatenate([[90.0], source.lat, [-90.0]]) if self.add_poles else source.lat
        # searchsorted needs increasing coordinates: interpolate on -lat (S -> N reversed)
        self.w_lat = linear_weights(-target.lat, -lat)
        lon = np.concatenate([source.lon, [360.0]])
        w = linear_weights(target.lon, lon)
        w[:, 0] += w[:, -1]  # 360 is 0
        self.w_lon = w[:, :-1]

    def apply(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.add_poles:
            north = x[..., :1, :].mean(axis=-1, keepdims=True).repeat(x.shape[-1], axis=-1)
            south = x[..., -1:, :].mean(axis=-1, keepdims=True).repeat(x.shape[-1], axis=-1)
            x = np.concatenate([north, x, south], axis=-2)
        return super().apply(x)


@lru_cache(maxsize=8)
def _sht_pair(source: Grid, target: Grid, lmax: int, mmax: int):  # noqa: ANN202 - torch modules
    import torch

    forward = harmonics.sht(source, lmax, mmax).to(torch.float64)
    inverse = harmonics.inverse_sht(target, lmax, mmax).to(torch.float64)
    return forward, inverse


def wind_pairs(names: list[str]) -> list[tuple[str, str]]:
    """The (eastward, northward) wind components among ``names``: ``u``/``v``, ``u10``/``v10``,
    ``u850``/``v850`` ... (the same suffix after ``u`` and ``v``)."""
    return [(n, "v" + n[1:]) for n in names if n.startswith("u") and "v" + n[1:] in names
            and (n[1:] == "" or n[1:].isdigit())]


@lru_cache(maxsize=8)
def _vector_sht_pair(source: Grid, target: Grid, lmax: int, mmax: int):  # noqa: ANN202 - torch modules
    import torch

    forward = harmonics.vector_sht(source, lmax, mmax).to(torch.float64)
    inverse = harmonics.inverse_vector_sht(target, lmax, mmax).to(torch.float64)
    return forward, inverse


class SpectralRegridder(Regridder):
    """Spherical-harmonic transform on the source grid, truncation, inverse transform on the target grid.

    Wind components (:func:`wind_pairs`) are regridded together as a vector field (vector
    spherical harmonics: the truncation of their vorticity and divergence), as a spectral model
    truncates them; truncating each component as a scalar would keep another field, whose
    vorticity differs from the truncated vorticity at the top degrees.
    """

    def __init__(self, source: Grid, target: Grid, lmax: int | None = None) -> None:
        super().__init__(source, target)
        self.lmax = lmax or min(harmonics.exact_lmax(source), harmonics.exact_lmax(target))
        self.mmax = min(self.lmax, source.nlon // 2 + 1, target.nlon // 2 + 1)

    def apply(self, x: np.ndarray) -> np.ndarray:
        import torch

        forward, inverse = _sht_pair(self.source, self.target, self.lmax, self.mmax)
        shape = x.shape[:-2]
        with torch.no_grad():
            t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).reshape(-1, *x.shape[-2:])
            y = inverse(forward(t)).numpy()
        return y.reshape(*shape, *y.shape[-2:])


    def apply_vector(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eastward and northward components ``(..., nlat, nlon)`` each, regridded as one vector field."""
        import torch

        forward, inverse = _vector_sht_pair(self.source, self.target, self.lmax, self.mmax)
        shape = u.shape[:-2]
        with torch.no_grad():
            t = torch.from_numpy(np.ascontiguousarray(np.stack([u, v], axis=-3), dtype=np.float64))
            y = inverse(forward(t.reshape(-1, 2, *u.shape[-2:]))).numpy()
        return y[:, 0].reshape(*shape, *y.shape[-2:]), y[:, 1].reshape(*shape, *y.shape[-2:])

    def __call__(self, ds: xr.Dataset) -> xr.Dataset:
        names = [str(n) for n in ds.data_vars if {"lat", "lon"} <= set(ds[n].dims)]
        pairs = [(u, v) for u, v in wind_pairs(names) if ds[u].dims == ds[v].dims]
        paired = {name for pair in pairs for name in pair}
        out = super().__call__(ds.drop_vars(sorted(paired)))
        sizes = {"lat": self.target.nlat, "lon": self.target.nlon}
        for u, v in pairs:
            ru, rv = xr.apply_ufunc(
                self.apply_vector, ds[u], ds[v], input_core_dims=[["lat", "lon"]] * 2,
                output_core_dims=[["lat", "lon"]] * 2, exclude_dims={"lat", "lon"}, dask="parallelized",
                output_dtypes=[np.float64, np.float64], dask_gufunc_kwargs={"output_sizes": sizes}, keep_attrs=True)
            out[u] = ru.transpose(*ds[u].dims).drop_vars(["lat", "lon"], errors="ignore")
            out[v] = rv.transpose(*ds[v].dims).drop_vars(["lat", "lon"], errors="ignore")
        return out[list(ds.data_vars)].assign_coords(self.target.coords())


REGRIDDERS: dict[str, type[Regridder]] = {
    "conservative": ConservativeRegridder,
    "bilinear": BilinearRegridder,
    "spectral": SpectralRegridder,
}


def make_regridder(method: str, source: Grid, target: Grid) -> Regridder:
    """The regridder for ``method``; warns when ``target`` is finer than ``source``."""
    if method not in REGRIDDERS:
        raise InputError(f"unknown regridding method {method!r}; expected one of {', '.join(METHODS)}")
    if target.nlat > source.nlat or target.nlon > source.nlon:
        warnings.warn(f"target grid {target} is finer than the source grid {source}: regridding adds no "
                      "information", stacklevel=2)
    return REGRIDDERS[method](source, target)


def regrid(ds: xr.Dataset, target: Grid, method: str = "conservative", source: Grid | None = None) -> xr.Dataset:
    """Regrid ``ds`` (dims ``lat`` N->S, ``lon`` 0->360) to ``target``; identity when the grids match."""
    source = source or Grid.from_coords(ds)
    if source == target:
        return ds.assign_coords(target.coords())
    return make_regridder(method, source, target)(ds)
