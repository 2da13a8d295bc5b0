r"""Forcings: fields known in advance at every valid time, given to the model beside the state.

For an input time :math:`t` the model sees, on the grid ``(nlat, nlon)``:

``cos_zenith``
    Cosine of the solar zenith angle,

    .. math:: \cos\zeta = \sin\varphi \sin\delta + \cos\varphi \cos\delta \cos h ,

    with latitude :math:`\varphi`, solar declination :math:`\delta` and hour angle
    :math:`h`. :math:`\delta` and the equation of time :math:`E` come from the Fourier
    series of Spencer (1971) in the fractional year
    :math:`\gamma = 2\pi (d - 1 + (H - 12)/24) / 365` (day of year :math:`d`, UTC hour
    :math:`H`), as in NOAA's *General Solar Position Calculations*; the hour angle is
    :math:`h = 2\pi (H + E/60 + \lambda/15 - 12)/24` at longitude :math:`\lambda` (degrees
    east). The cosine is **not** clipped at 0: negative values (night) also say how far
    below the horizon the sun is, which a clipped insolation would hide. Accuracy is a few
    tenths of a degree, ample for a forcing.
``sin_year``, ``cos_year``
    :math:`\sin, \cos (2\pi \tau_y)` with :math:`\tau_y` the fraction of the (365.25-day)
    year elapsed, constant over the grid.
``sin_day``, ``cos_day``
    :math:`\sin, \cos (2\pi H / 24)` of UTC time of day, constant over the grid.
static fields
    The store's time-invariant fields (land-sea mask, orography, ...), each normalised to
    area-weighted mean 0 and standard deviation 1 (see :func:`normalise_static`).

Reference: Spencer, J. W. (1971), Fourier series representation of the position of the
sun, *Search* 2(5), 172.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from pipelines.errors import InputError
from pipelines.grids import Grid

TIME_FORCINGS: tuple[str, ...] = ("cos_zenith", "sin_year", "cos_year", "sin_day", "cos_day")

_SECONDS_PER_DAY = 86400.0
_DAYS_PER_YEAR = 365.25


def forcing_names(static_names: list[str]) -> list[str]:
    """Names of the forcing channels in order: the time forcings, then the static fields."""
    return [*TIME_FORCINGS, *static_names]


def _day_of_year_and_hour(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Day of year (1-based, integer valued) and fractional UTC hour of each time, ``(T,)``."""
    times = np.asarray(times, dtype="datetime64[ns]")
    day_start = times.astype("datetime64[D]")
    year_start = times.astype("datetime64[Y]").astype("datetime64[D]")
    doy = (day_start - year_start).astype(np.int64) + 1.0
    hour = (times - day_start).astype("timedelta64[ns]").astype(np.float64) / 3.6e12
    return doy, hour


def solar_declination_and_equation_of_time(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Solar declination :math:`\delta` (radians) and equation of time :math:`E` (minutes), ``(T,)``.

    Spencer's (1971) series in the fractional year :math:`\gamma` (radians).
    """
    doy, hour = _day_of_year_and_hour(times)
    gamma = 2.0 * np.pi / 365.0 * (doy - 1.0 + (hour - 12.0) / 24.0)
    eot = 229.18 * (0.000075 + 0.001868 * np.cos(gamma) - 0.032077 * np.sin(gamma)
                    - 0.014615 * np.cos(2 * gamma) - 0.040849 * np.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma)
            - 0.006758 * np.cos(2 * gamma) + 0.000907 * np.sin(2 * gamma)
            - 0.002697 * np.cos(3 * gamma) + 0.00148 * np.sin(3 * gamma))
    return decl, eot


def cos_solar_zenith(times: np.ndarray, lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    r"""Cosine of the solar zenith angle, ``(T, nlat, nlon)``, unclipped (negative at night).

    Parameters
    ----------
    times
        UTC times, ``(T,)`` datetime64.
    lat_deg, lon_deg
        Latitudes ``(nlat,)`` in degrees north and longitudes ``(nlon,)`` in degrees east.
    """
    decl, eot = solar_declination_and_equation_of_time(times)
    _, hour = _day_of_year_and_hour(times)
    solar_hour = hour[:, None] + eot[:, None] / 60.0 + np.asarray(lon_deg)[None, :] / 15.0  # (T, nlon)
    hour_angle = 2.0 * np.pi * (solar_hour - 12.0) / 24.0
    lat = np.deg2rad(np.asarray(lat_deg))[None, :, None]
    decl = decl[:, None, None]
    return np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)[:, None, :]


def time_encodings(times: np.ndarray) -> np.ndarray:
    """``(T, 4)``: sin/cos of the fraction of the year and sin/cos of the UTC time of day."""
    times = np.asarray(times, dtype="datetime64[ns]")
    doy, hour = _day_of_year_and_hour(times)
    year_phase = 2.0 * np.pi * (doy - 1.0 + hour / 24.0) / _DAYS_PER_YEAR
    day_phase = 2.0 * np.pi * hour / 24.0
    return np.stack([np.sin(year_phase), np.cos(year_phase), np.sin(day_phase), np.cos(day_phase)], axis=1)


def compute_forcings(grid: Grid, times: np.ndarray, static: np.ndarray | None = None) -> torch.Tensor:
    """All forcing channels at ``times`` on ``grid``.

    Parameters
    ----------
    grid
        The model grid.
    times
        ``(T,)`` datetime64 UTC valid times (the model's *input* times).
    static
        ``(S, nlat, nlon)`` already normalised static fields, or None.

    Returns
    -------
    torch.Tensor
        ``(T, 5 + S, nlat, nlon)`` float32, channels named by :func:`forcing_names`.
    """
    times = np.atleast_1d(np.asarray(times, dtype="datetime64[ns]"))
    n_time = times.shape[0]
    zenith = cos_solar_zenith(times, grid.lat, grid.lon)[:, None]
    encodings = np.broadcast_to(time_encodings(times)[:, :, None, None], (n_time, 4, *grid.shape))
    parts = [zenith, encodings]
    if static is not None:
        if static.ndim != 3 or static.shape[1:] != grid.shape:
            raise InputError(f"static fields have shape {static.shape}; expected (S, {grid.nlat}, {grid.nlon}) for grid {grid}")
        parts.append(np.broadcast_to(static[None], (n_time, *static.shape)))
    return torch.from_numpy(np.concatenate(parts, axis=1).astype(np.float32))


def normalise_static(static: xr.Dataset | None, grid: Grid) -> tuple[list[str], np.ndarray | None]:
    """Names and ``(S, nlat, nlon)`` float32 values of the static fields, each normalised to
    area-weighted mean 0 and standard deviation 1 (a constant field becomes 0).

    Returns ``([], None)`` when the store has no static fields.
    """
    if static is None or not static.data_vars:
        return [], None
    names = sorted(str(name) for name in static.data_vars)
    weights = grid.latitude_weights[:, None]
    fields = []
    for name in names:
        values = np.asarray(static[name].transpose("lat", "lon").values, dtype=np.float64)
        if values.shape != grid.shape:
            raise InputError(f"static field {name!r} has shape {values.shape}; expected {grid.shape} for grid {grid}")
        mean = float((values * weights).mean())
        std = float(np.sqrt(((values - mean) ** 2 * weights).mean()))
        fields.append((values - mean) / std if std > 0 else np.zeros_like(values))
    return names, np.stack(fields).astype(np.float32)
