r"""Grids on the sphere: equiangular (poles included) and Legendre-Gauss.

A :class:`Grid` knows its latitudes and longitudes in degrees, its quadrature
weights (taken from :mod:`torch_harmonics.quadrature`, never re-derived), and how to
turn itself into and out of xarray coordinates.

Conventions used everywhere in this project
-------------------------------------------
* Latitude runs from north to south (90 -> -90), the order of ERA5 and of
  torch-harmonics' colatitude :math:`\theta \in [0, \pi]`.
* Longitude runs eastwards from 0 to :math:`360 - 360/n_{lon}` degrees.
* Dims are named ``lat`` and ``lon`` inside the project (stores, forecasts, scores).

Area weights
------------
The quadrature rule integrates over :math:`\cos\theta \in [-1, 1]` with weights
:math:`w_j` that sum to 2 (Clenshaw-Curtis on the equiangular grid, Gauss-Legendre on
the Legendre-Gauss grid). The cell weight of point :math:`(j, k)` is
:math:`w_j \, 2\pi / n_{lon}`, so that :math:`\sum_{jk} w_j 2\pi/n_{lon} = 4\pi` and

.. math:: \int_{S^2} f \, d\Omega \approx \sum_{j,k} f_{jk} \, w_j \, \frac{2\pi}{n_{lon}} .

:meth:`Grid.area_weights` normalises the latitude weights to **mean 1** over
latitudes (so a weighted mean over ``(lat, lon)`` is ``(w * x).mean()``); this is the
one normalisation used by the loss, the statistics and every verification metric.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, TypeVar

import numpy as np
import xarray as xr
from torch_harmonics.quadrature import _precompute_latitudes

from pipelines.errors import InputError

XarrayT = TypeVar("XarrayT", xr.Dataset, xr.DataArray)

GridKind = Literal["equiangular", "legendre-gauss"]
GRID_KINDS: tuple[str, ...] = ("equiangular", "legendre-gauss")

EARTH_RADIUS_M = 6.37122e6

LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "longitude")

_GRID_PATTERN = re.compile(r"^\s*([a-z-]+)\s*:\s*(\d+)\s*x\s*(\d+)\s*$")


@dataclass(frozen=True)
class Grid:
    """A global latitude-longitude grid.

    Parameters
    ----------
    kind
        ``"equiangular"`` (``nlat`` equally spaced latitudes, both poles included, as
        ERA5's 0.25 and 1 degree grids) or ``"legendre-gauss"`` (Gauss-Legendre
        nodes, no poles).
    nlat, nlon
        Number of latitudes and longitudes.
    """

    kind: GridKind
    nlat: int
    nlon: int

    def __post_init__(self) -> None:
        if self.kind not in GRID_KINDS:
            raise InputError(f"unknown grid kind {self.kind!r}; expected one of {', '.join(GRID_KINDS)}")
        if self.nlat < 2 or self.nlon < 4:
            raise InputError(f"grid {self.kind}:{self.nlat}x{self.nlon} is too small; need nlat >= 2 and nlon >= 4")

    # -- construction -------------------------------------------------------------
    @classmethod
    def parse(cls, spec: "str | Grid") -> "Grid":
        """Parse ``"legendre-gauss:64x128"`` or ``"equiangular:181x360"`` (nlat x nlon)."""
        if isinstance(spec, Grid):
            return spec
        match = _GRID_PATTERN.match(str(spec))
        if not match or match.group(1) not in GRID_KINDS:
            raise InputError(
                f"cannot parse grid {spec!r}; expected KIND:NLATxNLON with KIND in "
                f"{{{', '.join(GRID_KINDS)}}}, e.g. legendre-gauss:64x128 or equiangular:181x360"
            )
        return cls(match.group(1), int(match.group(2)), int(match.group(3)))  # type: ignore[arg-type]

    @classmethod
    def from_coords(cls, obj: xr.Dataset | xr.DataArray, atol_deg: float = 1e-4) -> "Grid":
        """Detect the grid of a dataset from its latitude and longitude coordinates.

        The latitude order (90 -> -90 or the reverse) and the longitude convention
        (0..360 or -180..180) do not matter: the sorted sets of points are compared.

        Raises
        ------
        InputError
            If the coordinates are missing, not global or not one of the known grids.
        """
        lat_name = _find_coord(obj, LAT_NAMES, "latitude")
        lon_name = _find_coord(obj, LON_NAMES, "longitude")
        lat = np.sort(np.asarray(obj[lat_name].values, dtype=np.float64))[::-1]
        lon = np.sort(np.mod(np.asarray(obj[lon_name].values, dtype=np.float64), 360.0))
        nlat, nlon = lat.size, lon.size
        if nlon < 4 or not np.allclose(lon, np.arange(nlon) * 360.0 / nlon, atol=atol_deg):
            raise InputError(
                f"longitudes are not a global regular grid ({nlon} points from {lon.min():g} to {lon.max():g}); "
                "expected equally spaced longitudes covering 0..360 or -180..180"
            )
        for kind in GRID_KINDS:
            candidate = cls(kind, nlat, nlon)  # type: ignore[arg-type]
            if np.allclose(lat, candidate.lat, atol=atol_deg):
                return candidate
        raise InputError(
            f"latitudes ({nlat} points from {lat.max():g} to {lat.min():g}) match neither an equiangular grid "
            "with poles nor a Legendre-Gauss grid; regrid the data first"
        )

    # -- coordinates ----------------------------------------------------------------
    @cached_property
    def _colat_and_weights(self) -> tuple[np.ndarray, np.ndarray]:
        colat, weights = _precompute_latitudes(self.nlat, grid=self.kind)
        return colat.numpy().copy(), weights.numpy().copy()

    @property
    def colat(self) -> np.ndarray:
        """Colatitudes in radians, ``(nlat,)``, from 0 (north) towards pi."""
        return self._colat_and_weights[0]

    @property
    def lat(self) -> np.ndarray:
        """Latitudes in degrees north, ``(nlat,)``, from north to south."""
        return 90.0 - np.rad2deg(self.colat)

    @property
    def lon(self) -> np.ndarray:
        """Longitudes in degrees east, ``(nlon,)``, ``0, 360/nlon, ...``."""
        return np.arange(self.nlon) * (360.0 / self.nlon)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nlat, self.nlon)

    @property
    def quadrature_weights(self) -> np.ndarray:
        r"""Quadrature weights over :math:`\cos\theta`, ``(nlat,)``, summing to 2."""
        return self._colat_and_weights[1]

    def cell_area(self, radius: float = 1.0) -> np.ndarray:
        r"""Area represented by each point, ``(nlat, nlon)``, summing to :math:`4\pi r^2` (units of ``radius``\ :sup:`2`)."""
        per_lat = self.quadrature_weights * (2.0 * math.pi / self.nlon) * radius**2
        return np.repeat(per_lat[:, None], self.nlon, axis=1)

    @property
    def latitude_weights(self) -> np.ndarray:
        """``(nlat,)`` quadrature weights normalised to mean 1 (the values of :meth:`area_weights`)."""
        return self.quadrature_weights / self.quadrature_weights.mean()

    def area_weights(self) -> xr.DataArray:
        """Latitude weights with dim ``lat``, normalised to mean 1 over latitudes.

        A global area-weighted mean of ``x(lat, lon)`` is ``(x * w).mean(("lat", "lon"))``.
        """
        return xr.DataArray(self.latitude_weights, dims=("lat",), coords={"lat": self.lat}, name="area_weight",
                            attrs={"long_name": "quadrature area weight (mean 1 over latitudes)", "units": "1"})

    def coords(self) -> dict[str, xr.DataArray]:
        """CF coordinates ``lat`` and ``lon`` for a dataset on this grid."""
        lat = xr.DataArray(self.lat, dims=("lat",), attrs={
            "units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"})
        lon = xr.DataArray(self.lon, dims=("lon",), attrs={
            "units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X"})
        return {"lat": lat, "lon": lon}

    def __str__(self) -> str:
        return f"{self.kind}:{self.nlat}x{self.nlon}"

    @property
    def resolution_deg(self) -> float:
        """Nominal spacing in degrees (longitude spacing)."""
        return 360.0 / self.nlon


def _find_coord(obj: xr.Dataset | xr.DataArray, names: tuple[str, ...], what: str) -> str:
    for name in names:
        if name in obj.coords or name in obj.dims:
            return name
    raise InputError(
        f"no {what} coordinate found (looked for {', '.join(names)}); "
        f"the data has coordinates {', '.join(map(str, obj.coords)) or 'none'}"
    )


def standardise_latlon(obj: XarrayT) -> XarrayT:
    """Rename latitude/longitude to ``lat``/``lon``, sort latitude north to south and
    wrap longitude into 0..360 ascending.

    Works lazily on dask-backed data (only coordinates are read).
    """
    lat_name = _find_coord(obj, LAT_NAMES, "latitude")
    lon_name = _find_coord(obj, LON_NAMES, "longitude")
    renames = {k: v for k, v in ((lat_name, "lat"), (lon_name, "lon")) if k != v}
    out = obj.rename(renames) if renames else obj
    lon = np.mod(np.asarray(out["lon"].values, dtype=np.float64), 360.0)
    out = out.assign_coords(lon=("lon", lon, out["lon"].attrs))
    lat_vals = np.asarray(out["lat"].values)
    if np.unique(lon).size != lon.size:
        raise InputError("longitudes contain duplicates after wrapping into 0..360 (is 360 included as well as 0?)")
    if np.unique(lat_vals).size != lat_vals.size:
        raise InputError("latitudes contain duplicates")
    out = out.sortby("lon")
    out = out.sortby("lat", ascending=False)
    out["lat"].attrs.update({"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude", "axis": "Y"})
    out["lon"].attrs.update({"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude", "axis": "X"})
    return out
