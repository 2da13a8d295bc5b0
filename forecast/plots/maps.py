"""Maps of one forecast field, the truth at its valid time and their difference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from forecast.plots.style import NoDataToPlot, colorbar_label, figure, format_units, lead_hours, save_figure
from pipelines.errors import InputError
from pipelines.grids import Grid, standardise_latlon

__all__ = ["plot_map"]

PROJECTIONS = ("robinson", "platecarree")


def _projection(name: str):
    import cartopy.crs as ccrs

    table = {"robinson": ccrs.Robinson, "platecarree": ccrs.PlateCarree}
    if name not in table:
        raise InputError(f"unknown projection {name!r}; expected one of {', '.join(PROJECTIONS)}")
    return table[name]()


def _cell_edges(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude cell edges (degrees) for ``pcolormesh``."""
    dlon = 360.0 / grid.nlon
    lon_edges = np.arange(grid.nlon + 1) * dlon - dlon / 2.0
    lat = grid.lat
    lat_edges = np.concatenate([[90.0], (lat[:-1] + lat[1:]) / 2.0, [-90.0]])
    return lon_edges, lat_edges


def _select(forecast: xr.Dataset, truth: xr.Dataset, variable: str, lead_time, member: int,
            init_time) -> tuple[xr.DataArray, xr.DataArray, pd.Timestamp, pd.Timedelta]:
    if variable not in forecast.data_vars:
        raise InputError(f"variable {variable!r} is not in the forecast; it has {', '.join(map(str, forecast.data_vars))}")
    lead = pd.Timedelta(hours=float(lead_time)) if isinstance(lead_time, (int, float)) else pd.Timedelta(lead_time)
    init = pd.Timestamp(init_time) if init_time is not None else pd.Timestamp(forecast["init_time"].values[0])
    try:
        fc = forecast[variable].sel(member=member, init_time=init, lead_time=lead)
    except KeyError:
        raise InputError(f"no forecast for member {member}, init {init}, lead {lead}; the forecast has members "
                         f"{forecast['member'].values.tolist()} and leads up to {pd.Timedelta(forecast['lead_time'].values[-1])}") from None
    valid = init + lead
    if variable not in truth.data_vars:
        raise InputError(f"the truth has no variable {variable!r}; it has {', '.join(map(str, truth.data_vars))}")
    if valid not in pd.DatetimeIndex(truth["time"].values):
        raise NoDataToPlot(f"the truth has no {variable!r} at the valid time {valid}")
    return fc.load(), truth[variable].sel(time=valid).load(), init, lead


def plot_map(forecast: xr.Dataset, truth: xr.Dataset, variable: str, lead_time, member: int, out_path: str | Path,
             init_time=None, projection: str = "robinson", dpi: int = 120) -> Path:
    """Three maps: forecast (one member), truth at the valid time, and forecast - truth.

    Parameters
    ----------
    forecast
        Rollout output (dims ``member, init_time, lead_time, lat, lon``).
    truth
        Truth with dims ``(time, lat, lon)`` on the forecast's grid (e.g. a store's ``data``, or
        :func:`forecast.verify.truth.truth_on_grid` for a truth on another grid).
    lead_time
        Hours (number) or anything ``pd.Timedelta`` accepts (``"24h"``).
    init_time
        The forecast's first init time when None.
    out_path
        ``.png`` or ``.pdf``.
    """
    forecast, truth = standardise_latlon(forecast), standardise_latlon(truth)
    grid = Grid.from_coords(forecast)
    if Grid.from_coords(truth) != grid:
        raise InputError(f"the truth is on grid {Grid.from_coords(truth)}, the forecast on {grid}; regrid the truth "
                         "first (forecast.verify.truth.truth_on_grid)")
    fc, tr, init, lead = _select(forecast, truth, variable, lead_time, member, init_time)
    err = fc - tr.values
    units = forecast[variable].attrs.get("units", truth[variable].attrs.get("units", "1"))
    lo, hi = np.nanpercentile(np.concatenate([fc.values.ravel(), tr.values.ravel()]), [1, 99])
    emax = float(np.nanmax(np.abs(err.values))) or 1.0  # symmetric, so 0 is white
    weights = grid.area_weights().values[:, None]
    rmse = float(np.sqrt(np.nansum(weights * err.values**2) / np.sum(weights * np.isfinite(err.values))))
    panels = [
        (fc, f"forecast (member {member})", "viridis", (lo, hi), colorbar_label(variable, units)),
        (tr, "truth", "viridis", (lo, hi), colorbar_label(variable, units)),
        (err, f"forecast $-$ truth (RMSE {rmse:.3g} {format_units(units)})", "RdBu_r", (-emax, emax),
         colorbar_label(f"{variable} error", units)),
    ]
    fig = _draw_panels(panels, grid, projection)
    name = forecast[variable].attrs.get("long_name", variable)
    name = variable if name == variable else f"{name} ({variable})"
    fig.suptitle(f"{name}, init {init:%Y-%m-%d %H:%M}, lead {lead_hours(lead):g} h, "
                 f"valid {init + lead:%Y-%m-%d %H:%M} UTC", fontsize=11)
    return save_figure(fig, out_path, dpi=dpi)


def _draw_panels(panels: list, grid: Grid, projection: str):
    import cartopy.crs as ccrs

    from forecast.plots.coastlines import add_coastlines

    fig = figure(figsize=(15, 3.9))
    lon_edges, lat_edges = _cell_edges(grid)
    for k, (field, title, cmap, (vmin, vmax), label) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1, projection=_projection(projection))
        ax.set_global()
        mesh = ax.pcolormesh(lon_edges, lat_edges, np.asarray(field.values), transform=ccrs.PlateCarree(),
                             cmap=cmap, vmin=vmin, vmax=vmax, shading="flat", rasterized=True)
        add_coastlines(ax)
        ax.set_title(title, fontsize=10)
        bar = fig.colorbar(mesh, ax=ax, orientation="horizontal", pad=0.05, shrink=0.85, extend="both")
        bar.set_label(label)
    return fig
