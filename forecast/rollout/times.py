"""The times of a rollout: its lead and output interval in model steps, its init times."""

from __future__ import annotations

import re

import pandas as pd

from pipelines.errors import InputError

__all__ = ["parse_lead", "parse_init_times", "output_every_steps", "hours"]

_LEAD = re.compile(r"^\s*-?\s*\d+(\.\d+)?\s*[a-zA-Z]+(\s*\d+(\.\d+)?\s*[a-zA-Z]+)*\s*$")


def parse_lead(text: str, step: pd.Timedelta, name: str = "lead") -> int:
    """Number of model steps in a lead such as ``"10d"``, ``"72h"``, ``"6h"`` or ``"1d12h"``.

    ``name`` is the option the duration came from (``lead``, ``output_every``), for the messages.

    Raises
    ------
    InputError
        If ``text`` is not a positive duration with units or not a multiple of ``step``.
    """
    step = pd.Timedelta(step)
    try:
        if not _LEAD.match(str(text)):
            raise ValueError
        lead = pd.Timedelta(str(text).replace(" ", ""))
    except ValueError:
        raise InputError(f"cannot parse {name} {text!r}; expected a duration with units, e.g. 10d, 72h or 6h") from None
    if lead <= pd.Timedelta(0):
        raise InputError(f"{name} {text!r} must be a positive duration, e.g. 10d, 72h or 6h")
    steps, rest = divmod(lead, step)
    if rest != pd.Timedelta(0):
        raise InputError(f"{name} {text!r} is not a multiple of the model time step {hours(step)}")
    return int(steps)


def parse_init_times(texts: list[str]) -> list[pd.Timestamp]:
    """Sorted unique init times from ISO strings (comma lists allowed inside an item)."""
    items = [t.strip() for text in texts for t in str(text).split(",") if t.strip()]
    if not items:
        raise InputError("no init time given; pass --init 2020-01-01T00[,2020-01-02T00,...]")
    times = []
    for item in items:
        try:
            times.append(pd.Timestamp(item if len(item) != 13 else item + ":00"))
        except ValueError:
            raise InputError(f"cannot parse init time {item!r}; expected ISO, e.g. 2020-01-01T00 or 2020-01-01T06:00") from None
    if any(t.tz is not None for t in times):
        raise InputError("init times must be UTC without a time-zone suffix, e.g. 2020-01-01T00")
    return sorted(set(times))


def output_every_steps(every: int | str, step: pd.Timedelta) -> int:
    """``output_every`` in model steps: an int is steps, a string a duration (``"24h"``) that
    must be a positive multiple of the model step."""
    if isinstance(every, int):
        return every
    return parse_lead(every, step, "output_every")   # the same rules: positive, units, a multiple of the step


def hours(duration: pd.Timedelta) -> str:
    """``"6 h"``: a duration in hours, for messages."""
    return f"{duration / pd.Timedelta(hours=1):g} h"
