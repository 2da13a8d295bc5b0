r"""``forecast export --format grib2``: a forecast as GRIB2 that ecCodes, cfgrib and CDO read.

One file per init time, ``<stem>_<YYYYMMDDTHHMM>.grib2`` (every member), or with
``per_member`` one per init time and member, ``<stem>_<YYYYMMDDTHHMM>_m<NNN>.grib2``;
messages ordered by lead time, then variable, then member. Each file is written to a
temporary sibling and renamed; a file that exists is kept unless ``overwrite``.

Parameters (:data:`SINGLE_LEVEL`, :data:`UPPER_AIR`): WMO GRIB2 codes through ecCodes'
parameter database (paramId, level type, level), so that no local table is needed:
``t2m`` 167 at 2 m, ``u10``/``v10`` 165/166 at 10 m, ``msl`` 151 at mean sea level,
``tp`` 228228 (total precipitation in kg m-2: a forecast in metres is multiplied by 1000),
``z500`` 129 on isobaricInhPa 500, ... A bare upper-air name (the shallow-water demo's
``gh``, ``u``, ``v``, ``vo``) is one layer: level type ``atmosphere`` (code 10, "entire
atmosphere considered as a single layer"). A variable with no code here, or whose units
are neither the parameter's nor convertible to them, is refused before anything is written.

Time: ``dataDate``/``dataTime`` is the init time, the step the lead time (hours, or
minutes when a lead is not whole hours). An accumulated variable (``tp``) sums over
``accumulation`` before each step (default: since the previous output step), product
template 8 (11 for members); at step 0, where nothing has accumulated, it is written as 0
over ``0-0`` as ECMWF does (the forecast file's lead-0 value is the analysis'). More than
one member: product template 1 (11), ``perturbationNumber`` = the member (0-based, as in
the forecast), ``numberOfForecastsInEnsemble`` = the member count,
``typeOfEnsembleForecast`` = 3 (every member is a perturbed forecast; there is no
unperturbed control); one member is a deterministic forecast (template 0).

Grids: equiangular -> ``regular_ll``; Legendre-Gauss with an even number of latitudes ->
``regular_gg`` with N = nlat / 2 (its Gaussian latitudes are the Legendre-Gauss nodes);
odd ones have no GRIB form and are refused (roll out with ``--output-grid``).

Packing: simple packing with ``bits`` bits per value (default 16), or CCSDS (lossless
compression of the same packed integers). A decoded value differs from the forecast by
less than one packing step, :math:`(\max - \min) / (2^{bits} - 1)` of its field; NaNs
are written as missing (bitmap). ``centre`` is the originating centre (default 255,
missing: give your own WMO centre code).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd
import xarray as xr

from pipelines.atomic import atomic_path
from pipelines.errors import InputError
from pipelines.grib import cf_units
from pipelines.grids import Grid
from pipelines.progress import progress
from pipelines.variables import canonical, split_level

log = logging.getLogger(__name__)

__all__ = ["GribCode", "grib_code", "export_grib", "SINGLE_LEVEL", "UPPER_AIR", "Packing", "parse_packing"]

Packing = Literal["simple", "ccsds"]
PACKING_TYPES = {"simple": "grid_simple", "ccsds": "grid_ccsds"}


def parse_packing(text: str) -> Packing:
    """``text`` (``--packing``) as a :data:`Packing`; InputError if unknown."""
    for packing in get_args(Packing):
        if text == packing:
            return packing
    raise InputError(f"--packing {text!r} is not known; use {' or '.join(PACKING_TYPES)}")
MISSING = 9.999e20
# (ensemble, accumulated) -> product definition template
TEMPLATES = {(False, False): 0, (False, True): 8, (True, False): 1, (True, True): 11}
# a forecast's units -> the GRIB parameter's units: factor
CONVERSIONS = {("m", "kg m-2"): 1000.0, ("mm", "kg m-2"): 1.0}


@dataclass(frozen=True)
class GribCode:
    """How one forecast variable is written: ecCodes paramId, level type and level, the
    parameter's units (UDUNITS spelling) and whether it is accumulated."""

    param_id: int
    level_type: str
    level: int
    units: str
    accumulated: bool = False


SINGLE_LEVEL = {
    "t2m": GribCode(167, "heightAboveGround", 2, "K"), "d2m": GribCode(168, "heightAboveGround", 2, "K"),
    "u10": GribCode(165, "heightAboveGround", 10, "m s-1"), "v10": GribCode(166, "heightAboveGround", 10, "m s-1"),
    "u100": GribCode(131, "heightAboveGround", 100, "m s-1"), "v100": GribCode(132, "heightAboveGround", 100, "m s-1"),
    "msl": GribCode(151, "meanSea", 0, "Pa"), "sp": GribCode(134, "surface", 0, "Pa"),
    "tp": GribCode(228228, "surface", 0, "kg m-2", accumulated=True),
    "tcwv": GribCode(137, "entireAtmosphere", 0, "kg m-2"), "sst": GribCode(34, "surface", 0, "K"),
    "skt": GribCode(235, "surface", 0, "K"), "lsm": GribCode(172, "surface", 0, "1"),
    "z_surface": GribCode(129, "surface", 0, "m2 s-2"),
}
# upper-air variables: short name -> (paramId, units); on pressure levels (z500) or one layer (gh)
UPPER_AIR = {"z": (129, "m2 s-2"), "t": (130, "K"), "u": (131, "m s-1"), "v": (132, "m s-1"), "q": (133, "kg kg-1"),
             "w": (135, "Pa s-1"), "vo": (138, "s-1"), "d": (155, "s-1"), "gh": (156, "m"), "r": (157, "%")}


def grib_code(name: str) -> GribCode:
    """The GRIB2 code of a forecast variable (see the module docstring).

    Raises
    ------
    InputError
        If ``name`` has no code here.
    """
    short = canonical(name)
    if short in SINGLE_LEVEL:
        return SINGLE_LEVEL[short]
    if short in UPPER_AIR:   # one layer, as the shallow-water model's
        return GribCode(UPPER_AIR[short][0], "atmosphere", 0, UPPER_AIR[short][1])
    split = split_level(name)
    if split and canonical(split[0]) in UPPER_AIR and float(split[1]).is_integer():
        param, units = UPPER_AIR[canonical(split[0])]
        return GribCode(param, "isobaricInhPa", int(split[1]), units)
    known = ", ".join([*SINGLE_LEVEL, *(f"{n}<hPa>" for n in UPPER_AIR)])
    raise InputError(f"variable {name!r} has no GRIB2 code in forecast/export_grib.py (known: {known}); "
                     "export it with --format cdo")


def unit_factor(name: str, units: str, code: GribCode) -> float:
    """The factor from the forecast's ``units`` to the parameter's (1 when they agree)."""
    units = cf_units(units)
    if units == code.units:
        return 1.0
    if (units, code.units) in CONVERSIONS:
        return CONVERSIONS[(units, code.units)]
    raise InputError(f"variable {name!r} is in {units!r}, its GRIB2 parameter {code.param_id} in {code.units!r}, "
                     "and no conversion is known; export it with --format cdo")


# -- geometry and time ---------------------------------------------------------------------------
def grid_keys(grid: Grid) -> tuple[str, dict[str, float | int]]:
    """The ecCodes sample and grid keys of ``grid`` (latitudes north to south, longitudes from 0)."""
    keys: dict[str, float | int] = {
        "Ni": grid.nlon, "Nj": grid.nlat, "latitudeOfFirstGridPointInDegrees": float(grid.lat[0]),
        "latitudeOfLastGridPointInDegrees": float(grid.lat[-1]), "longitudeOfFirstGridPointInDegrees": 0.0,
        "longitudeOfLastGridPointInDegrees": float(grid.lon[-1]), "iDirectionIncrementInDegrees": 360.0 / grid.nlon,
        "iScansNegatively": 0, "jScansPositively": 0}
    if grid.kind == "equiangular":
        return "GRIB2", {**keys, "jDirectionIncrementInDegrees": 180.0 / (grid.nlat - 1)}
    if grid.nlat % 2:
        raise InputError(f"grid {grid} has an odd number of Gaussian latitudes, which GRIB's regular Gaussian grid "
                         f"(2N latitudes) cannot hold; roll out with --output-grid legendre-gauss:{grid.nlat + 1}x"
                         f"{grid.nlon} or equiangular:{grid.nlat}x{grid.nlon}")
    return "regular_gg_sfc_grib2", {**keys, "N": grid.nlat // 2}


def step_unit(leads: pd.TimedeltaIndex) -> tuple[str, pd.Timedelta]:
    """``("h", 1 hour)`` when every lead is whole hours, else ``("m", 1 minute)``."""
    hour = pd.Timedelta(hours=1)
    if all(lead % hour == pd.Timedelta(0) for lead in leads):
        return "h", hour
    return "m", pd.Timedelta(minutes=1)


def accumulation_ranges(leads: pd.TimedeltaIndex, unit: pd.Timedelta,
                        accumulation: pd.Timedelta | None) -> list[tuple[int, int]]:
    """``(start, end)`` of each lead's accumulation in ``unit``s: since the previous lead (the first:
    since the start), or over ``accumulation``; ``(0, 0)`` at lead 0."""
    ranges = []
    for i, lead in enumerate(leads):
        start = lead - accumulation if accumulation is not None else (leads[i - 1] if i else pd.Timedelta(0))
        if lead > pd.Timedelta(0) and start < pd.Timedelta(0):
            raise InputError(f"--accumulation {_hours(accumulation)} is longer than the lead time {_hours(lead)}")
        ranges.append((int(max(start, pd.Timedelta(0)) / unit), int(lead / unit)))
    return ranges


def _hours(duration: pd.Timedelta | None) -> str:
    return f"{pd.Timedelta(duration) / pd.Timedelta(hours=1):g}h"


# -- messages ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Encoder:
    """Everything shared by the messages of one export: the template handle (grid, centre,
    packing) and the step unit."""

    template: int
    unit_name: str
    unit: pd.Timedelta
    members: int

    @classmethod
    def create(cls, grid: Grid, members: int, unit: tuple[str, pd.Timedelta], bits: int, packing: Packing,
               centre: int) -> Encoder:
        import eccodes

        sample, keys = grid_keys(grid)
        handle = eccodes.codes_grib_new_from_samples(sample)
        for key, value in {"centre": centre, "significanceOfReferenceTime": 1, **keys}.items():
            eccodes.codes_set(handle, key, value)
        eccodes.codes_set(handle, "packingType", PACKING_TYPES[packing])
        eccodes.codes_set(handle, "bitsPerValue", bits)
        return cls(handle, unit[0], unit[1], members)

    def close(self) -> None:
        import eccodes

        eccodes.codes_release(self.template)

    def message(self, code: GribCode, values: np.ndarray, init: pd.Timestamp, steps: tuple[int, int],
                member: int) -> bytes:
        """One GRIB2 message: ``values`` ``(nlat, nlon)`` in the parameter's units at ``steps``
        (start, end of the step in the encoder's unit; equal unless accumulated)."""
        import eccodes

        ensemble = self.members > 1
        handle = eccodes.codes_clone(self.template)
        try:
            keys = {"productDefinitionTemplateNumber": TEMPLATES[(ensemble, code.accumulated)],
                    "paramId": code.param_id, "typeOfLevel": code.level_type, "level": code.level,
                    "dataDate": int(init.strftime("%Y%m%d")), "dataTime": int(init.strftime("%H%M")),
                    "typeOfGeneratingProcess": 4 if ensemble else 2, "typeOfProcessedData": 4 if ensemble else 1,
                    "stepUnits": self.unit_name}
            keys.update({"typeOfStatisticalProcessing": 1, "stepRange": f"{steps[0]}-{steps[1]}"}
                        if code.accumulated else {"step": steps[1]})
            if ensemble:
                keys.update({"perturbationNumber": member, "numberOfForecastsInEnsemble": self.members,
                             "typeOfEnsembleForecast": 3})
            for key, value in keys.items():
                eccodes.codes_set(handle, key, value)
            _set_values(handle, values)
            return eccodes.codes_get_message(handle)
        finally:
            eccodes.codes_release(handle)


def _set_values(handle: int, values: np.ndarray) -> None:
    import eccodes

    flat = np.asarray(values, dtype=np.float64).ravel()
    missing = ~np.isfinite(flat)
    if missing.any():   # a bitmap: missing points are not packed
        eccodes.codes_set(handle, "bitmapPresent", 1)
        eccodes.codes_set(handle, "missingValue", MISSING)
        flat = np.where(missing, MISSING, flat)
    eccodes.codes_set_values(handle, flat)


# -- files -----------------------------------------------------------------------------------------
def grib_name(stem: str, init_time: pd.Timestamp, member: int | None) -> str:
    """``"fc_20200103T0000.grib2"``, or ``"fc_20200103T0000_m007.grib2"`` for one member."""
    tail = "" if member is None else f"_m{int(member):03d}"
    return f"{stem}_{pd.Timestamp(init_time):%Y%m%dT%H%M}{tail}.grib2"


def export_grib(forecast: str | Path, out_dir: str | Path, per_member: bool = False, bits: int = 16,
                packing: Packing = "simple", centre: int = 255, accumulation: pd.Timedelta | None = None,
                overwrite: bool = False) -> list[Path]:
    """Write the complete ``forecast`` as GRIB2 files in ``out_dir``; see the module docstring.
    Returns the paths (written, or kept when they exist and not ``overwrite``).

    Raises
    ------
    InputError
        For an incomplete forecast, a variable without a GRIB2 code or with units that do not
        convert, an odd Gaussian grid, an accumulation longer than a lead time, or ``bits``
        outside 1..32; nothing is written then.
    """
    from forecast.export import open_for_export

    ds, stem, out_dir = open_for_export(forecast, out_dir)
    if not 1 <= bits <= 32:
        raise InputError(f"--bits {bits} is outside 1..32 (bits per packed value)")
    codes = {str(n): grib_code(str(n)) for n in ds.data_vars}
    factors = {n: unit_factor(n, str(ds[n].attrs.get("units", "1")), code) for n, code in codes.items()}
    leads = pd.TimedeltaIndex(ds["lead_time"].values)
    unit = step_unit(leads)
    steps = accumulation_ranges(leads, unit[1], accumulation)
    members = [int(m) for m in ds["member"].values]
    encoder = Encoder.create(Grid.from_coords(ds), len(members), unit, bits, packing, centre)
    paths = []
    try:
        for i in progress(range(ds.sizes["init_time"]), desc="export grib2"):
            init = pd.Timestamp(ds["init_time"].values[i])
            targets = [out_dir / grib_name(stem, init, m if per_member else None)
                       for m in (members if per_member else [None])]
            paths += targets
            if overwrite or not all(t.exists() for t in targets):
                _write_init(ds.isel(init_time=i), init, targets, encoder, codes, factors, steps)
    finally:
        encoder.close()
    log.info("exported %d GRIB2 file(s) into %s", len(paths), out_dir)
    return paths


def _write_init(one: xr.Dataset, init: pd.Timestamp, targets: list[Path], encoder: Encoder,
                codes: dict[str, GribCode], factors: dict[str, float], steps: list[tuple[int, int]]) -> None:
    """Every message of one init time, into one file or one per member (renamed together at the end)."""
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(open(stack.enter_context(atomic_path(t)), "wb")) for t in targets]
        for lead, step in enumerate(steps):
            for name, code in codes.items():
                fields = one[name].isel(lead_time=lead).transpose("member", "lat", "lon").values * factors[name]
                if code.accumulated and step[1] == 0:
                    fields = np.zeros_like(fields)   # nothing accumulated at the start of a forecast
                for m, member in enumerate(one["member"].values):
                    out = files[m] if len(files) > 1 else files[0]
                    out.write(encoder.message(code, fields[m], init, step, int(member)))
