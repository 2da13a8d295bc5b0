"""Missing values in ingested data: count them, report them in one line, fill them.

NaNs and Infs are both missing data (a broken file or conversion); regridding would spread
either over the whole field, so :mod:`pipelines.prepare` counts them before anything else and
refuses them or, when asked, fills them (:func:`fill_nearest`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.errors import InputError


def nan_counts(ds: xr.Dataset) -> xr.Dataset:
    """Lazy counts of missing values per variable, time and ``kind`` (``nan``, ``inf``),
    ``(time, kind)`` int64. An Inf is missing data too (a broken file or conversion), and
    regridding would spread it over the whole field."""
    out = xr.Dataset()
    for name, da in ds.data_vars.items():
        spatial = [d for d in da.dims if d != "time"]
        infinite = (da == np.inf) | (da == -np.inf)
        out[name] = xr.concat([da.isnull().sum(spatial), infinite.sum(spatial)],
                              dim=pd.Index(["nan", "inf"], name="kind")).transpose("time", "kind").astype(np.int64)
        out[name].attrs["field_size"] = int(np.prod([da.sizes[d] for d in spatial]))
    return out


def nan_report(counts: xr.Dataset) -> str:
    """One line: ``t2m: 12 NaNs and 24 Infs in 2 of 8 steps (1 all missing)``; empty when clean."""
    parts = []
    for name, da in counts.data_vars.items():
        nans, infs = (np.asarray(da.sel(kind=k).values) for k in ("nan", "inf"))
        missing = nans + infs
        if missing.sum() == 0:
            continue
        what = " and ".join(f"{int(c.sum())} {label}" for c, label in ((nans, "NaNs"), (infs, "Infs")) if c.sum())
        parts.append(f"{name}: {what} in {int((missing > 0).sum())} of {missing.size} steps "
                     f"({int((missing == da.attrs['field_size']).sum())} all missing)")
    return "; ".join(parts)


def fill_nearest(ds: xr.Dataset, counts: xr.Dataset) -> xr.Dataset:
    """Fill NaNs and Infs: an all-missing field from the nearest time with data, other
    missing values from the nearest valid point of the same field (Euclidean in index
    space). ``counts`` is :func:`nan_counts` computed."""
    out = {}
    for name, da in ds.data_vars.items():
        c = np.asarray(counts[name].sum("kind").values)
        full = int(np.prod([n for d, n in da.sizes.items() if d != "time"]))
        good = np.nonzero(c < full)[0]
        if good.size == 0:
            raise InputError(f"variable {name!r} is NaN or Inf everywhere; nothing to fill from")
        nearest = good[np.argmin(np.abs(np.arange(c.size)[:, None] - good[None, :]), axis=1)]
        if np.any(nearest != np.arange(c.size)):
            da = da.isel(time=xr.DataArray(nearest, dims="time")).assign_coords(time=da["time"]).chunk({"time": 1})
        out[name] = xr.apply_ufunc(_fill_field, da, input_core_dims=[["lat", "lon"]], output_core_dims=[["lat", "lon"]],
                                   dask="parallelized", output_dtypes=[da.dtype], keep_attrs=True)
    return xr.Dataset(out, attrs=ds.attrs)


def _fill_field(x: np.ndarray) -> np.ndarray:
    from scipy.ndimage import distance_transform_edt

    x = np.array(x, copy=True)
    flat = x.reshape(-1, *x.shape[-2:])
    for field in flat:
        mask = ~np.isfinite(field)
        if mask.any() and not mask.all():
            idx = distance_transform_edt(mask, return_distances=False, return_indices=True)
            field[...] = field[tuple(idx)]
    return flat.reshape(x.shape)
