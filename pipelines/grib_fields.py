"""Lazy GRIB fields: a dask array over the messages of one variable, decoded by ecCodes.

The file's index (:mod:`pipelines.grib_index`) gives, for every (time, level) of a
variable, the offset of the message that holds that field. :func:`fields_array` turns
that map into a dask array whose chunks hold whole fields, all levels and as many times
as fit a byte budget; computing a chunk opens the file once and decodes its messages with
ecCodes. A combination without a message is NaN, as are the points a message's bitmap
marks missing.

ecCodes built with thread support (its ``ECCODES_THREADS`` feature, as the wheel is)
decodes separate messages in parallel dask threads; without it the calls are serialised.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any

import dask.array as da
import numpy as np



@functools.cache
def _eccodes_guard() -> contextlib.AbstractContextManager:
    import eccodes

    threaded = "ECCODES_THREADS" in eccodes.codes_get_features(eccodes.CODES_FEATURES_ENABLED).split()
    return contextlib.nullcontext() if threaded else threading.Lock()


def fields_array(path: str, offsets: np.ndarray, geo_shape: tuple[int, ...], chunk_bytes: int) -> da.Array:
    """The fields at ``offsets`` ``(time, level)`` (-1: no message) of ``path`` as a float32 dask
    array ``(time, level, *geo_shape)``; a chunk holds every level and as many times as fit
    ``chunk_bytes``."""
    per_time = 4 * int(np.prod(geo_shape)) * offsets.shape[1]
    blocks = da.from_array(offsets, chunks=(max(1, chunk_bytes // max(per_time, 1)), -1))
    return blocks.map_blocks(read_fields, path, geo_shape, dtype=np.float32, new_axis=[2, 3],
                             chunks=blocks.chunks + tuple((n,) for n in geo_shape), meta=np.array((), np.float32))


@contextlib.contextmanager
def message_at(path: str, offset: int) -> Iterator[Any]:
    """The ecCodes handle of the message at ``offset`` of ``path`` (released on exit)."""
    import eccodes

    with open(path, "rb") as f:
        f.seek(offset)
        handle = eccodes.codes_new_from_file(f, eccodes.CODES_PRODUCT_GRIB)
    try:
        yield handle
    finally:
        eccodes.codes_release(handle)


def read_header(path: str, offset: int, keys: tuple[str, ...]) -> dict[str, Any]:
    """The values of ``keys`` in the message at ``offset`` (``None`` for a key it lacks)."""
    import eccodes

    with message_at(path, offset) as handle:
        return {k: eccodes.codes_get(handle, k) if eccodes.codes_is_defined(handle, k) else None for k in keys}


def read_coordinates(path: str, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """``(latitudes, longitudes)`` in degrees of the regular grid of the message at ``offset``,
    in its scanning order (the order of its values)."""
    import eccodes

    with message_at(path, offset) as handle:
        return (np.asarray(eccodes.codes_get_array(handle, "distinctLatitudes"), dtype=np.float64),
                np.asarray(eccodes.codes_get_array(handle, "distinctLongitudes"), dtype=np.float64))


def read_fields(offsets: np.ndarray, path: str, geo_shape: tuple[int, ...]) -> np.ndarray:
    """Decode the messages at ``offsets`` of ``path``: ``offsets.shape + geo_shape`` float32."""
    out = np.full(offsets.shape + geo_shape, np.nan, dtype=np.float32)
    with open(path, "rb") as f, _eccodes_guard():
        for index in np.ndindex(offsets.shape):
            if offsets[index] >= 0:
                f.seek(int(offsets[index]))
                out[index] = decode(f, geo_shape)
    return out


def decode(f: Any, geo_shape: tuple[int, ...]) -> np.ndarray:
    """The values of the message at the position of ``f``, in its scanning order, NaN where missing."""
    import eccodes

    handle = eccodes.codes_new_from_file(f, eccodes.CODES_PRODUCT_GRIB)
    try:
        values = eccodes.codes_get_values(handle).reshape(geo_shape)
        if eccodes.codes_get(handle, "bitmapPresent"):
            values[values == eccodes.codes_get(handle, "missingValue")] = np.nan
        if len(geo_shape) == 2 and eccodes.codes_is_defined(handle, "alternativeRowScanning") and \
                eccodes.codes_get(handle, "alternativeRowScanning", ktype=int):
            values[1::2] = values[1::2, ::-1]   # boustrophedonic rows, as cfgrib reorders them
        return values
    finally:
        eccodes.codes_release(handle)
