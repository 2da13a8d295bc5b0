"""The scores file ``scores.nc``: its layout, writing and reading.

Root group, one float64 variable per physical variable with dims
``(lead_time, model, metric, region)`` on disk (``lead_time`` first: CDO's time axis);
groups ``rank_histogram`` ``(lead_time, region, rank)`` and ``spectra``
``(lead_time, source, wavenumber)``. The categorical dims (``model``, ``metric``,
``region``, ``source``) are stored as int32 codes with CF ``flag_values`` /
``flag_meanings`` (CDO, ncview and the CF checker read no string coordinates);
:func:`open_scores` decodes them to labels and returns the dims in the documented order.

Plots, reports, notebooks and the operational run read scores through this module
only, not through the verification workflow that writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from forecast.verify.registry import METRICS
from pipelines.atomic import atomic_path
from pipelines.errors import InputError

__all__ = ["open_scores", "write_scores", "LAYOUT"]


CATEGORIES = ("model", "metric", "region", "source", "part", "sum")
# dims in the order users get them from open_scores; on disk lead_time comes first (CDO's time axis)
LAYOUT = {None: ("model", "metric", "lead_time", "region"), "rank_histogram": ("lead_time", "region", "rank"),
          "spectra": ("source", "lead_time", "wavenumber"),
          "init_sums": ("model", "part", "sum", "lead_time", "region", "init_time")}   # CF: the T-like init_time last
COORD_ATTRS: dict[str, dict[str, Any]] = {
    "model": {"long_name": "forecast system (the model's forecast or a baseline)"},
    "metric": {"long_name": "verification metric"},
    "region": {"long_name": "verification region (latitude band)"},
    "lead_time": {"long_name": "lead time", "standard_name": "forecast_period"},
    "rank": {"long_name": "number of members below the truth", "units": "1"},
    "source": {"long_name": "forecast or perfect-model ensemble (members and init times averaged), or truth"},
    "part": {"long_name": "partial sum of the scores (forecast.verify.accumulate)"},
    "sum": {"long_name": "value: sum of w x; weight: sum of w"},
    "init_time": {"long_name": "initial time", "standard_name": "forecast_reference_time"},
    "wavenumber": {"long_name": "total spherical wavenumber l", "units": "1"},
}


def _encode_categories(ds: xr.Dataset) -> xr.Dataset:
    """String labels -> int32 codes with CF ``flag_values``/``flag_meanings`` (CDO, ncview and
    the CF checker do not read string coordinates); :func:`open_scores` decodes them back."""
    for dim in CATEGORIES:
        if dim in ds.coords:
            names = [str(x) for x in ds[dim].values]
            codes = np.arange(len(names), dtype=np.int32)
            attrs = {**COORD_ATTRS[dim], "flag_values": codes, "flag_meanings": " ".join(names)}
            if dim == "metric":
                attrs["comment"] = "; ".join(f"{m}: {METRICS[m].long_name}" for m in names)
            ds = ds.assign_coords({dim: (dim, codes, attrs)})
    for dim, attrs in COORD_ATTRS.items():
        if dim in ds.coords and dim not in CATEGORIES:
            ds[dim].attrs.update(attrs)
    return ds


def _decode_categories(ds: xr.Dataset) -> xr.Dataset:
    for dim in CATEGORIES:
        if dim in ds.coords and "flag_meanings" in ds[dim].attrs:
            names = str(ds[dim].attrs["flag_meanings"]).split()
            ds = ds.assign_coords({dim: (dim, [names[int(c)] for c in ds[dim].values], {"long_name": COORD_ATTRS[dim]["long_name"]})})
    return ds


def _encoding(ds: xr.Dataset) -> dict:
    enc: dict = {name: {"_FillValue": None} for name in ds.coords}
    for name in ds.coords:   # CF 1.8 has no 64-bit integers: ranks and wavenumbers fit in 32 bits
        if np.issubdtype(ds[name].dtype, np.integer):
            enc[name]["dtype"] = "int32"
    if "lead_time" in ds.coords:
        enc["lead_time"] = {"units": "hours", "dtype": "float64", "_FillValue": None}
    if "init_time" in ds.coords:
        enc["init_time"] = {"units": "hours since 1970-01-01 00:00:00", "calendar": "proleptic_gregorian",
                            "dtype": "float64", "_FillValue": None}
    for name in ds.data_vars:
        enc[name] = {"_FillValue": np.nan, "dtype": "float64"}
    return enc


def _for_disk(ds: xr.Dataset, group: str | None, attrs: dict, var_attrs: Callable[[str], dict]) -> xr.Dataset:
    ds = ds.copy()
    for name in ds.data_vars:
        ds[name].attrs = var_attrs(str(name))
    ds.attrs = attrs
    ds = _encode_categories(ds)
    order = ("lead_time", *[d for d in LAYOUT[group] if d != "lead_time"])
    return ds.transpose(*order)


def open_scores(path: str | Path, group: str | None = None) -> xr.Dataset:
    """Open ``scores.nc`` (root) or one of its groups (``rank_histogram``, ``spectra``), loaded,
    with labelled categorical coords and dims in the documented order."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"scores file {path} does not exist; create it with `forecast verify`")
    if path.is_dir():
        raise InputError(f"{path} is a directory, not a scores file; pass the scores.nc written by `forecast verify`")
    try:
        with xr.open_dataset(path, group=group, engine="netcdf4", decode_timedelta=True) as ds:
            ds = ds.load()
    except Exception as exc:  # the backends raise many types for a file that is not NetCDF
        raise InputError(f"cannot read group {group or '/'} of {path} as scores written by `forecast verify` "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    expected = set(LAYOUT.get(group, ()))
    if not expected <= set(ds.dims):
        raise InputError(f"{path} is not a scores file of `forecast verify`: group {group or '/'} lacks the dims "
                         f"{', '.join(sorted(expected - set(ds.dims)))}")
    ds = _decode_categories(ds)
    return ds.transpose(*LAYOUT.get(group, ()), ...) if set(LAYOUT.get(group, ())) <= set(ds.dims) else ds


def write_scores(out: str | Path, parts: dict[str | None, tuple[xr.Dataset | None, Callable[[str], dict]]],
                 attrs: dict, source: str) -> Path:
    """Write the root group and the groups atomically: ``parts`` maps a group (None: root)
    to its Dataset (None: not written) and a function giving each variable's attributes."""
    out = Path(out)
    with atomic_path(out) as tmp:
        for group, (ds, var_attrs) in parts.items():
            if ds is None:
                continue
            disk = _for_disk(ds, group, attrs if group is None else {"title": f"{group} of {source}"}, var_attrs)
            disk.to_netcdf(tmp, mode="w" if group is None else "a", group=group, format="NETCDF4",
                           encoding=_encoding(disk))
    return out
