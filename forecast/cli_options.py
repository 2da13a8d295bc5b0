"""The command line's option helpers: options as config overrides, comma lists, durations."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from pipelines.config import positive_duration
from pipelines.errors import InputError

__all__ = ["given_options", "comma_list", "load_config_with", "lead_hours", "duration"]


def given_options(**values: Any) -> list[str]:
    """Options given on the command line as ``key=value`` overrides (None means not given)."""
    import yaml

    out = []
    for key, value in values.items():
        if value is None or value == [] or value is False:
            continue
        out.append(f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}")
    return out


def comma_list(text: Optional[str], option: str) -> Optional[list[str]]:
    """A comma list option; None when not given, an error when given empty (not the defaults)."""
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise InputError(f"{option} is empty; give a comma list or leave the option out for the config's value")
    return items


def load_config_with(cls: type, config: Optional[Path], options: list[str], overrides: Optional[list[str]]):
    from pipelines.config import load_config

    return load_config(cls, config, options + list(overrides or []))


def lead_hours(text: str) -> float:
    """``"24"`` (hours) or a duration with units (``"1d"``, ``"36h"``) -> hours."""
    import pandas as pd

    try:
        return float(text)
    except ValueError:
        pass
    try:
        return pd.Timedelta(text) / pd.Timedelta(hours=1)
    except ValueError:
        raise InputError(f"--lead {text!r} is neither hours (24) nor a duration (1d, 36h)") from None


def duration(text: Optional[str], option: str):
    """``"1h"`` -> a pandas Timedelta (None stays None)."""
    if text is None:
        return None
    try:
        return positive_duration(text, option)
    except ValueError as exc:
        raise InputError(str(exc)) from None
