"""Variable names: ERA5 short/long aliases, pressure-level requests and CF attributes.

A request is a name the user writes (``t2m``, ``2m_temperature``, ``z500``, ``lsm``).
:func:`select_variable` turns it into a ``(time, lat, lon)`` DataArray named after the
request, whatever the source calls it:

* aliases: ``t2m`` finds ``t2m`` or ``2m_temperature`` (and the reverse);
* pressure levels: ``z500`` selects level 500 hPa of ``z``/``geopotential`` on a
  ``level`` dim (``pressure_level`` is renamed to ``level`` at ingest);
* a name that exists as-is always wins over a level request (``u10`` is the 10 m wind).
"""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

from pipelines.errors import InputError

LEVEL_DIM = "level"

# canonical short name -> other spellings used by the CDS and the analysis-ready Zarr stores
ALIASES: dict[str, tuple[str, ...]] = {
    "t2m": ("2m_temperature", "2t"),
    "d2m": ("2m_dewpoint_temperature", "2d"),
    "u10": ("10m_u_component_of_wind", "10u"),
    "v10": ("10m_v_component_of_wind", "10v"),
    "msl": ("mean_sea_level_pressure",),
    "sp": ("surface_pressure",),
    "tp": ("total_precipitation",),
    "tcwv": ("total_column_water_vapour",),
    "sst": ("sea_surface_temperature",),
    "skt": ("skin_temperature",),
    "z": ("geopotential",),
    "t": ("temperature",),
    "u": ("u_component_of_wind",),
    "v": ("v_component_of_wind",),
    "w": ("vertical_velocity",),
    "q": ("specific_humidity",),
    "r": ("relative_humidity",),
    "vo": ("vorticity", "relative_vorticity"),
    "d": ("divergence",),
    "gh": ("geopotential_height",),
    "lsm": ("land_sea_mask",),
    "z_surface": ("geopotential_at_surface", "z", "geopotential", "orography"),
}

# CF attributes for canonical names (used when the source has none)
CF_ATTRS: dict[str, dict[str, str]] = {
    "t2m": {"units": "K", "long_name": "2 metre temperature", "standard_name": "air_temperature"},
    "d2m": {"units": "K", "long_name": "2 metre dewpoint temperature", "standard_name": "dew_point_temperature"},
    "u10": {"units": "m s-1", "long_name": "10 metre U wind component", "standard_name": "eastward_wind"},
    "v10": {"units": "m s-1", "long_name": "10 metre V wind component", "standard_name": "northward_wind"},
    "msl": {"units": "Pa", "long_name": "mean sea level pressure", "standard_name": "air_pressure_at_mean_sea_level"},
    "sp": {"units": "Pa", "long_name": "surface pressure", "standard_name": "surface_air_pressure"},
    "tp": {"units": "m", "long_name": "total precipitation", "standard_name": "lwe_thickness_of_precipitation_amount"},
    "tcwv": {"units": "kg m-2", "long_name": "total column water vapour",
             "standard_name": "atmosphere_mass_content_of_water_vapor"},
    "sst": {"units": "K", "long_name": "sea surface temperature", "standard_name": "sea_surface_temperature"},
    "skt": {"units": "K", "long_name": "skin temperature", "standard_name": "surface_temperature"},
    "z": {"units": "m2 s-2", "long_name": "geopotential", "standard_name": "geopotential"},
    "t": {"units": "K", "long_name": "temperature", "standard_name": "air_temperature"},
    "u": {"units": "m s-1", "long_name": "U component of wind", "standard_name": "eastward_wind"},
    "v": {"units": "m s-1", "long_name": "V component of wind", "standard_name": "northward_wind"},
    "w": {"units": "Pa s-1", "long_name": "vertical velocity", "standard_name": "lagrangian_tendency_of_air_pressure"},
    "q": {"units": "kg kg-1", "long_name": "specific humidity", "standard_name": "specific_humidity"},
    "r": {"units": "%", "long_name": "relative humidity", "standard_name": "relative_humidity"},
    "vo": {"units": "s-1", "long_name": "relative vorticity", "standard_name": "atmosphere_relative_vorticity"},
    "d": {"units": "s-1", "long_name": "divergence", "standard_name": "divergence_of_wind"},
    "gh": {"units": "m", "long_name": "geopotential height", "standard_name": "geopotential_height"},
    "lsm": {"units": "1", "long_name": "land-sea mask", "standard_name": "land_binary_mask"},
    "z_surface": {"units": "m2 s-2", "long_name": "surface geopotential", "standard_name": "surface_geopotential"},
}

_LEVEL_REQUEST = re.compile(r"^([a-z_]*[a-z])(\d+(?:\.\d+)?)$")


def canonical(name: str) -> str:
    """The canonical short name of ``name`` (itself when it is not a known alias)."""
    if name in ALIASES:
        return name
    for short, longs in ALIASES.items():
        if name in longs and short != "z_surface":
            return short
    return name


def spellings(name: str) -> tuple[str, ...]:
    """All names under which ``name`` may appear in a source, the requested one first."""
    short = canonical(name)
    return tuple(dict.fromkeys((name, short, *ALIASES.get(short, ()))))


def _find(ds: xr.Dataset, name: str, want_level: bool) -> str | None:
    for candidate in spellings(name):
        if candidate in ds.data_vars and (LEVEL_DIM in ds[candidate].dims) == want_level:
            return candidate
    return None


def describe_available(ds: xr.Dataset) -> str:
    """``"t2m, msl, z (levels 250, 500, 850)"``: what a request may name."""
    parts = []
    for name, var in ds.data_vars.items():
        if LEVEL_DIM in var.dims:
            levels = ", ".join(f"{lv:g}" for lv in np.asarray(var[LEVEL_DIM].values))
            parts.append(f"{name} (levels {levels}: request e.g. {name}{np.asarray(var[LEVEL_DIM].values)[0]:g})")
        else:
            parts.append(str(name))
    return ", ".join(parts) or "none"


def split_level(request: str) -> tuple[str, float] | None:
    """``"z500"`` -> ``("z", 500.0)``; ``None`` for a name without a level suffix."""
    match = _LEVEL_REQUEST.match(request)
    return (match.group(1), float(match.group(2))) if match else None


def select_variable(ds: xr.Dataset, request: str) -> xr.DataArray:
    """Select ``request`` from ``ds`` as a DataArray named ``request`` with CF attributes.

    Raises
    ------
    InputError
        If the variable (or level) is missing, listing what exists.
    """
    found = _find(ds, request, want_level=False)
    if found is not None:
        return _with_attrs(ds[found], request, level=None)
    split = split_level(request)
    if split:
        base, level = split
        found = _find(ds, base, want_level=True)
        if found is not None:
            levels = np.asarray(ds[LEVEL_DIM].values, dtype=float)
            if not np.any(np.isclose(levels, level)):
                raise InputError(f"level {level:g} of {found!r} (for {request!r}) is not in the data; "
                                 f"levels available: {', '.join(f'{x:g}' for x in levels)}")
            da = ds[found].isel({LEVEL_DIM: int(np.argmin(np.abs(levels - level)))}, drop=True)
            return _with_attrs(da, request, level=level, base=base)
    where = f" (inputs: {ds.attrs['inputs']})" if "inputs" in ds.attrs else ""
    raise InputError(f"variable {request!r} is not in the input; available: {describe_available(ds)}{where}")


def _with_attrs(da: xr.DataArray, request: str, level: float | None, base: str | None = None) -> xr.DataArray:
    short = canonical(base or request)
    attrs = {k: v for k, v in da.attrs.items() if k in ("units", "long_name", "standard_name")}
    for key, value in CF_ATTRS.get(short, {}).items():
        attrs.setdefault(key, value)
    if level is not None:
        attrs["long_name"] = f"{attrs.get('long_name', short)} at {level:g} hPa"
        attrs["pressure_level_hPa"] = level
    out = da.rename(request).copy(deep=False)
    out.attrs = attrs
    return out
