"""Verification regions as latitude bands, applied as masks on the area weights.

=================  ==================
name               latitudes
=================  ==================
global             90S - 90N
nh-extratropics    20N - 90N
tropics            20S - 20N
sh-extratropics    90S - 20S
=================  ==================

Bands are closed intervals: a point exactly at 20N belongs to both the tropics and the
northern extratropics (on the usual grids no point falls there; WeatherBench 2 does the
same). The masked weights keep their global normalisation; every metric divides by the
sum of the weights it uses, so a regional mean is a true area-weighted mean over the band.
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from pipelines.errors import InputError

__all__ = ["REGIONS", "region_weights", "regional_weights", "check_regions"]

REGIONS: dict[str, tuple[float, float]] = {
    "global": (-90.0, 90.0),
    "nh-extratropics": (20.0, 90.0),
    "tropics": (-20.0, 20.0),
    "sh-extratropics": (-90.0, -20.0),
}


def check_regions(names: Sequence[str]) -> list[str]:
    """Return ``names`` if all are known regions, else raise :class:`InputError`."""
    unknown = [n for n in names if n not in REGIONS]
    if unknown:
        raise InputError(f"unknown region(s) {', '.join(unknown)}; expected some of {', '.join(REGIONS)}")
    return list(names)


def region_weights(weights: xr.DataArray, region: str) -> xr.DataArray:
    """Area weights (dim ``lat``) set to 0 outside ``region``'s latitude band."""
    check_regions([region])
    south, north = REGIONS[region]
    inside = (weights["lat"] >= south) & (weights["lat"] <= north)
    return weights.where(inside, 0.0).rename(f"area_weight_{region}")


def regional_weights(weights: xr.DataArray, regions: list[str]) -> xr.DataArray:
    """Masked area weights of several regions stacked along a new dim ``region``.

    Passed to any metric, they give one score per region in a single pass (the
    metrics contract the data with the weights, so nothing is replicated per region).
    """
    stacked = xr.concat([region_weights(weights, r) for r in check_regions(regions)], dim="region")
    return stacked.assign_coords(region=list(regions)).rename("area_weight")
