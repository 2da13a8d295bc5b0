"""The index of a GRIB file: one header scan, cached outside the data, and the checks it allows.

ecCodes reads the header of every message once per file, through cfgrib's indexer (the
values of cfgrib's index keys per message, with the message offsets). The index is
pickled into the cache directory (:func:`index_directory`), never beside the data, and
written atomically (a temporary sibling, then a rename), so a read-only data directory
works, a killed run leaves no broken index, and a later run of the same file skips the
scan.

:func:`check_index` refuses, before any field is decoded, what the pipeline cannot read:
grids other than regular latitude-longitude and regular Gaussian (with the MARS/CDS
request that gives one), two grids in one file, ensemble members, two fields for one
variable, level and time, and accumulations over different or zero-length periods.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.atomic import temporary_sibling
from pipelines.errors import InputError

log = logging.getLogger(__name__)

# cfgrib's index keys with the validity time (validityDate/Time as seconds since 1970) and the step
# range (accumulation periods) added
TIME_DIMS = ("valid_time",)
EXTRA_COORDS = {"stepRange": "valid_time"}
SUPPORTED_GRIDS = ("regular_ll", "regular_gg")
# stepType of a field processed over a period -> its CF cell method
PROCESSED = {"accum": "sum", "avg": "mean", "max": "maximum", "min": "minimum"}
# what to ask MARS or the CDS for instead of a grid type the pipeline does not read
GRID_ADVICE = {
    "reduced_gg": "reduced Gaussian (ERA5's native MARS grid); request grid=0.25/0.25 (regular latitude-longitude) "
                  "or grid=F320 (regular Gaussian) instead",
    "sh": "spherical-harmonic coefficients (ERA5's native MARS form of upper-air fields); request grid=0.25/0.25 "
          "(regular latitude-longitude) instead",
}
INDEX_MAX_AGE_DAYS = 30


def index_directory() -> Path:
    """Where the pickled GRIB indexes go: ``$XDG_CACHE_HOME/sphere-forecast/grib-index``
    (``~/.cache/...``), or the temporary directory when that cannot be written."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    for directory in (base / "sphere-forecast" / "grib-index",
                      Path(tempfile.gettempdir()) / f"sphere-forecast-grib-index-{os.getuid()}"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(directory, os.W_OK):
            return directory
    raise InputError(f"no writable cache directory for GRIB indexes (tried {base} and {tempfile.gettempdir()}); "
                     "set XDG_CACHE_HOME to a writable directory")


def index_path(path: Path) -> Path:
    """The index of ``path`` in :func:`index_directory`, named after its path, size and mtime
    (a changed file gets a new index; entries unused for 30 days are removed)."""
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:24]
    return index_directory() / f"{key}.idx"


def _prune(directory: Path) -> None:
    cutoff = time.time() - INDEX_MAX_AGE_DAYS * 86400
    for old in directory.glob("*.idx"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass


def scan(path: Path) -> list[dict[str, Any]]:
    """The header values of every message of ``path`` (:func:`index_records`); an InputError for a
    file that is not GRIB or is truncated."""
    if not path.is_file() or path.stat().st_size == 0:
        raise InputError("is empty or not a file; expected a GRIB file")
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if b"GRIB" not in head:
        raise InputError(f"is not a GRIB file (no 'GRIB' in its first {len(head)} bytes: starts with {head[:8]!r})")
    try:
        index = file_index(path)
    except EOFError:
        raise InputError("is not a GRIB file (ecCodes found no valid message)") from None
    except Exception as exc:  # ecCodes raises its own types for a truncated or corrupt message
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"is truncated or corrupt ({type(exc).__name__}: {first})") from None
    return index_records(index)


def file_index(path: Path) -> Any:
    """cfgrib's index of ``path`` (header values and offset of every message), cached.

    Built once and written atomically: cfgrib would write it in place, leaving a broken
    file behind when killed.
    """
    from cfgrib import cfmessage, dataset, messages

    stream = messages.FileStream(str(path), errors="raise")
    keys = dataset.compute_index_keys(TIME_DIMS, EXTRA_COORDS)
    cached = index_path(path)
    try:
        index = messages.FileIndex.from_indexpath(str(cached))
        if index.index_keys == keys and index.fieldset == stream:
            os.utime(cached)   # recently used: kept by the pruning
            return index
    except Exception:  # noqa: BLE001 - missing, unreadable or from another cfgrib: rebuilt below
        pass
    index = messages.FileIndex.from_fieldset_and_iteritems(stream, _headers(path), keys, cfmessage.COMPUTED_KEYS)
    tmp = temporary_sibling(cached)
    try:
        with open(tmp, "wb") as f:
            pickle.dump(index, f)
        os.replace(tmp, cached)
    except OSError as exc:   # a full cache costs a rescan next time, nothing else
        log.warning("cannot cache the GRIB index of %s in %s: %s", path, cached.parent, exc.strerror)
        tmp.unlink(missing_ok=True)
    _prune(cached.parent)
    return index


def _headers(path: Path) -> Iterator[tuple[Any, Any]]:
    """``(message id, cfgrib Message)`` of every message of ``path``, headers only (the data
    sections are skipped: the index needs none), ids as cfgrib's own scan makes them: the
    offset, or ``(offset, n)`` for the n-th field of a multi-field message."""
    import eccodes
    from cfgrib import messages

    previous, count = -1, 0
    with open(path, "rb") as f, messages.multi_enabled(f):
        while (handle := eccodes.codes_grib_new_from_file(f, headers_only=True)) is not None:
            offset = int(eccodes.codes_get(handle, "offset"))
            count = count + 1 if offset == previous else 0
            previous = offset
            yield (offset, count) if count else offset, messages.Message(codes_id=handle, errors="raise")


# -- checks on the index (no data read) ----------------------------------------------------
def param_name(param: int) -> str:
    """``"2t (paramId 167)"``: ecCodes' short name of a parameter, for messages."""
    import eccodes

    handle = eccodes.codes_grib_new_from_samples("GRIB2")
    try:
        eccodes.codes_set(handle, "paramId", int(param))
        return f"{eccodes.codes_get(handle, 'shortName')} (paramId {param})"
    except Exception:  # noqa: BLE001 - a parameter ecCodes does not know by number alone
        return f"paramId {param}"
    finally:
        eccodes.codes_release(handle)


def index_records(index: Any) -> list[dict[str, Any]]:
    """One dict per message: its header values (``index.index_keys`` -> value; ``valid_time`` in
    seconds since 1970, ``level`` a float) and its ``offset`` in the file.

    Raises
    ------
    InputError
        For a multi-field message (several fields in one message), which is not read.
    """
    keys = [k.partition(":")[0] for k in index.index_keys]
    out = []
    for values, ids in index.iter_index():
        for message in ids:
            if not isinstance(message, int):   # (offset, n): the n-th field of a multi-field message
                raise InputError("holds multi-field GRIB messages (several fields in one message); split them "
                                 "first, e.g. with grib_copy")
            out.append({**dict(zip(keys, values)), "offset": message})
    return out


def check_index(records: list[dict[str, Any]]) -> None:
    """Refuse unsupported grids, two grids, ensembles, duplicate fields and mixed accumulations."""
    grids: dict[tuple, set] = defaultdict(set)
    for r in records:
        grids[(r["gridType"], r["numberOfPoints"], r["md5GridSection"])].add(r["paramId"])
    for grid_type, _, _ in grids:
        if grid_type not in SUPPORTED_GRIDS:
            advice = GRID_ADVICE.get(grid_type, "not a global regular grid; request grid=0.25/0.25 (regular "
                                                "latitude-longitude) instead")
            raise InputError(f"gridType {grid_type}: {advice}")
    if len(grids) > 1:
        described = "; ".join(f"{g} with {n} points: {', '.join(map(param_name, sorted(p)))}"
                              for (g, n, _), p in grids.items())
        raise InputError(f"holds fields on {len(grids)} grids ({described}); request one grid (e.g. grid=0.25/0.25) "
                         "or split the file by grid")
    members = sorted({r["number"] for r in records} - {"undef"})
    if len(members) > 1:
        raise InputError(f"holds {len(members)} ensemble members (number {members[0]}..{members[-1]}); prepare reads "
                         "analyses: keep one member, e.g. grib_copy -w number=0")
    fields = Counter((r["paramId"], r["typeOfLevel"], r["level"], r["valid_time"]) for r in records)
    for (param, level_type, level, valid), count in fields.items():
        if count > 1:
            when = np.datetime64(int(valid), "s")
            raise InputError(f"{param_name(param)} on {level_type} {level:g} valid at {when} appears {count} times "
                             "(analysis and forecast, or two steps?); keep one field per variable, level and time")
    _check_accumulations(records)


def period(step_range: str) -> str:
    """``"5-6"`` -> ``"1 hours"``: the length of a GRIB step range (in the message's step units, hours)."""
    start, _, end = str(step_range).partition("-")
    try:
        return f"{float(end) - float(start):g} hours" if end else "0 hours"
    except ValueError:
        return str(step_range)


def _check_accumulations(records: list[dict[str, Any]]) -> None:
    periods: dict[tuple[int, str], set[str]] = defaultdict(set)
    for r in records:
        if r["stepType"] not in PROCESSED:
            continue
        if period(r["stepRange"]) == "0 hours":
            raise InputError(f"{param_name(r['paramId'])} valid at {np.datetime64(int(r['valid_time']), 's')} spans "
                             f"no time (stepRange {r['stepRange']}: step 0 of a forecast holds nothing); take it from "
                             "a later step or leave the variable out")
        periods[(r["paramId"], r["stepType"])].add(period(r["stepRange"]))
    for (param, step_type), found in periods.items():
        if len(found) > 1:
            raise InputError(f"{param_name(param)} (stepType {step_type}) spans different periods "
                             f"({', '.join(sorted(found))}); request one period (ERA5: 1 hour; GFS: keep either "
                             "the 3-hour or the 6-hour buckets)")
