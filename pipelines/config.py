"""Typed, strict configuration: YAML files -> pydantic objects.

Every config class derives from :class:`StrictModel`, so an unknown key or a value of
the wrong type is an :class:`~pipelines.errors.InputError` that names the key and the
file. ``key=value`` overrides (dotted keys for nested sections) are applied on top of
the file before validation; values are parsed as YAML scalars (``lr=3e-4``,
``members=16``, ``variables=[z,u,v]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from pipelines.errors import InputError

T = TypeVar("T", bound="StrictModel")


# "legendre-gauss:64x128" or "equiangular:181x360" (nlat x nlon); checked when the config is
# loaded, so that a typo fails before any work (pipelines.grids.Grid.parse reads it).
GridSpec = Annotated[str, StringConstraints(pattern=r"^(equiangular|legendre-gauss):[1-9]\d*x[1-9]\d*$")]
PositiveInt = Annotated[int, Field(ge=1)]
Positive = Annotated[float, Field(gt=0)]


if TYPE_CHECKING:
    import pandas as pd


class StrictModel(BaseModel):
    """Base of all config sections: unknown keys are errors, values are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class StirringConfig(StrictModel):
    """Stochastic stirring of the shallow-water flow, and the drag that balances it
    (:class:`pipelines.sources.shallow_water.Stirring`): a statistically stationary flow."""

    rms: Positive = 1.5e-10           # s-2, rms vorticity tendency of the stirring
    degree: Positive = 10.0           # total wavenumber it stirs at ...
    width: Annotated[float, Field(ge=0)] = 2.0  # ... give or take this many degrees
    correlation_hours: Positive = 24.0  # AR(1) e-folding time of the stirring pattern
    drag_days: Positive = 10.0        # linear (Rayleigh) drag on vorticity and divergence


class SWESourceConfig(StrictModel):
    """The embedded shallow-water source (``forecast prepare --source swe``)."""

    grid: GridSpec = "legendre-gauss:64x128"
    days: Positive = 4.0
    output_step_hours: Positive = 1.0
    substep_seconds: Positive = 450.0
    spinup_days: Annotated[float, Field(ge=0)] = 0.5
    seed: int = 0
    wind_rms: Positive = 15.0         # m s-1, root-mean-square wind of the initial flow
    peak_wavenumber: Positive = 6.0   # total wavenumber of the initial kinetic-energy peak
    start: str = "2020-01-01T00:00"
    balanced: bool = True  # zero divergence + geopotential from the nonlinear balance equation
    # spectral truncation lmax = mmax of the solver; None: ceil(nlat / 3). Run the solver on a finer
    # grid than the store's with lmax >= the store grid's nlat, and the store (spectral regridding)
    # has power at every degree its grid resolves, as ERA5 regridded to it does
    lmax: PositiveInt | None = None
    # stochastic stirring + drag (keys of StirringConfig, e.g. `swe.stirring={}` for its defaults):
    # a flow with a climate, whose statistics stay put; None: the unforced flow, which decays
    stirring: StirringConfig | None = None


class PrepareConfig(StrictModel):
    """Reanalysis -> training store (``forecast prepare``)."""

    source: Literal["files", "swe"] = "files"
    inputs: list[str] = []
    swe: SWESourceConfig = SWESourceConfig()
    variables: list[str] = ["z500", "t850", "t2m", "u10", "v10"]
    static_variables: list[str] = []
    grid: GridSpec = "legendre-gauss:64x128"
    method: Literal["conservative", "bilinear", "spectral"] = "conservative"
    time_step: str | None = None
    start: str | None = None
    end: str | None = None
    fill: Literal["fail", "nearest"] = "fail"
    climatology_smoothing_days: Annotated[float, Field(ge=0)] = 15.0
    # statistics and climatology from the times up to this one: an ISO time, or "-5d" for
    # "all but the last 5 days" (keep held-back verification days out); None: every time
    statistics_end: str | None = None
    out: str = "data/store.zarr"
    append: bool = False
    overwrite: bool = False           # replace an existing store at `out` (else refused, unless append)
    # with append: leave out the times the store holds already (a drop directory keeps earlier
    # deliveries) instead of refusing them; no new time leaves the store as it is
    append_new_only: bool = False
    scheduler: str | None = None      # None: LocalCluster; "tcp://...": existing; "threads"/"synchronous": no distributed
    n_workers: PositiveInt | None = None
    sources_dir: str | None = None    # where source "swe" writes its NetCDF files (default "<out>.sources")

    @field_validator("time_step")
    @classmethod
    def _positive_time_step(cls, value: str | None) -> str | None:
        if value is None:
            return value
        positive_duration(value, "time step")
        return value


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[x,y]"]`` into a nested dict with YAML-parsed values."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise InputError(f"override {item!r} is not KEY=VALUE (e.g. training.lr=3e-4)")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise InputError(f"override {item!r}: the value is not valid YAML ({problem}); quote it or fix the "
                             "brackets, e.g. members=16 or variables=[z500,t850]") from None
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def config_differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``["key: old -> new", ...]`` for the keys (dotted when nested) whose values differ."""
    import json

    lines = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            lines += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            lines.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return lines


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a one-line error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not a YAML text file (byte {exc.start} is not UTF-8)") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a mapping of keys to values, not {type(data).__name__}")
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None,
                **defaults: Any) -> T:
    """Build ``cls`` from an optional YAML file, keyword defaults and ``key=value`` overrides.

    Precedence (last wins): class defaults, ``defaults``, the file, the overrides.

    Raises
    ------
    InputError
        Naming the offending key and file, e.g. ``configs/train.yaml: unknown key 'lrr'``.
    """
    data: dict[str, Any] = dict(defaults)
    if path is not None:
        data = _deep_merge(data, read_yaml(path))
    if overrides:
        data = _deep_merge(data, parse_overrides(overrides))
    data = with_section_defaults(cls, data)
    source = " with ".join(part for part in (str(path) if path else "", "command-line options" if overrides else "")
                           if part) or "defaults"
    return validate_config(cls, data, source=source)


def with_section_defaults(cls: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every nested section it gives merged onto that section's default.

    A section whose default is an instance with its own values (``DemoConfig.train`` is a
    ``TrainConfig`` with the demo's epochs and learning rate) keeps them when the file or
    an override sets only some of its keys (``train.rollout_steps=2``); without this the
    section would be rebuilt from the class defaults and silently lose the others.
    """
    out = dict(data)
    for name, field in cls.model_fields.items():
        value, default = out.get(name), field.default
        if isinstance(value, dict) and isinstance(default, BaseModel):
            out[name] = with_section_defaults(type(default), _deep_merge(default.model_dump(exclude_unset=True), value))
    return out


def validate_config(cls: type[T], data: dict[str, Any], source: str = "config") -> T:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{source}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key {key!r}"
    if err["type"] == "string_pattern_mismatch" and "legendre-gauss" in str(err.get("ctx", {}).get("pattern", "")):
        return (f"key {key!r}: expected a grid KIND:NLATxNLON with KIND equiangular or legendre-gauss, "
                f"e.g. legendre-gauss:64x128 (got {err.get('input')!r})")
    if err["type"] == "value_error":   # a check across keys (a model validator): its message says it all
        message = str(err["msg"]).removeprefix("Value error, ")
        return message if not err["loc"] else f"key {key!r}: {message}"
    return f"key {key!r}: {err['msg']} (got {err.get('input')!r})"


def positive_duration(text: str, name: str) -> pd.Timedelta:
    """``"6h"`` -> ``pd.Timedelta``; ValueError naming ``name`` if ``text`` is no duration or not positive."""
    import pandas as pd

    try:
        value = pd.Timedelta(text)
    except ValueError:
        raise ValueError(f"{name} {text!r} is not a duration like 1h or 6h") from None
    if value <= pd.Timedelta(0):
        raise ValueError(f"{name} {text!r} must be positive, e.g. 6h")
    return value
