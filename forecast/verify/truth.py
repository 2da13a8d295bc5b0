"""The truth that forecasts are compared with, on the forecast's grid.

Verification, the maps of ``forecast plot`` and the operational run read the truth
through these functions, so that a truth on another grid than the forecast (a forecast
written with ``--output-grid``, a store on the model grid) is regridded the same way
everywhere.
"""

from __future__ import annotations

import logging
from pathlib import Path

import xarray as xr

from pipelines.errors import InputError
from pipelines.grids import Grid, standardise_latlon

__all__ = ["open_truth", "select_truth_variables", "onto_grid", "on_grid", "truth_on_grid"]

log = logging.getLogger(__name__)


def open_truth(path: str) -> tuple[xr.Dataset, xr.Dataset | None]:
    """Truth ``(time, lat, lon)`` and its climatology (None when it has none).

    A training store is opened with :func:`pipelines.store.open_store`; anything else
    (NetCDF files, globs, ERA5-convention Zarr) through :mod:`pipelines.ingest`.
    """
    from pipelines.store import open_store

    p = Path(path)
    if p.is_dir() and ((p / "zarr.json").exists() or (p / ".zgroup").exists()):
        try:
            store = open_store(p)
            return store.data, store.climatology
        except InputError:
            pass  # a Zarr store that is not a training store: read it as ERA5 files
    from pipelines.ingest import open_inputs

    data, _, _ = open_inputs([path])
    return data, None


def select_truth_variables(truth: xr.Dataset, names: list[str]) -> xr.Dataset:
    """The truth variables named like the forecast's (ERA5 spellings and levels accepted)."""
    if all(n in truth.data_vars for n in names):
        return truth[names]
    from pipelines.variables import select_variable

    return xr.Dataset({n: select_variable(truth, n) for n in names})


def onto_grid(ds: xr.Dataset, grid: Grid, method: str | None, what: str) -> xr.Dataset:
    """``ds`` on the forecast's ``grid``: regridded (lazily) with the pipeline's regridder when
    its grid differs, e.g. a forecast written with ``--output-grid`` against a store."""
    source = Grid.from_coords(ds)
    if source == grid:
        return on_grid(ds, grid)
    if method is None:
        raise InputError(f"the {what}'s grid {source} differs from the forecast grid {grid}; set regrid_method "
                         "(conservative, bilinear or spectral) to regrid it")
    from pipelines.regrid import regrid

    log.info("regridding the %s from %s onto the forecast grid %s (%s)", what, source, grid, method)
    return regrid(ds, grid, method, source=source)


def on_grid(ds: xr.Dataset, grid: Grid) -> xr.Dataset:
    """Replace lat/lon by the grid's exact values (the data's may differ by round-off,
    which would make xarray's alignment drop or reindex points)."""
    return ds.assign_coords(grid.coords())




def truth_on_grid(path: str | Path, variables: list[str], grid: Grid, method: str | None) -> xr.Dataset:
    """The truth at ``path`` (a training store or ERA5-convention files): ``variables``,
    ``(time, lat, lon)``, on ``grid`` (regridded lazily with ``method`` when it differs).

    Raises
    ------
    InputError
        If the truth cannot be read, lacks a variable, or is on another grid and
        ``method`` is None.
    """
    truth, _ = open_truth(str(path))
    return onto_grid(select_truth_variables(standardise_latlon(truth), variables), grid, method, "truth")
