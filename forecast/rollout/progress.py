"""How far a partial rollout output got: its ``progress.json`` and the units' markers
(written by :class:`forecast.rollout.io.ForecastWriter`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forecast.rollout.shards import work_units

__all__ = ["saved_config", "completed_leads", "UNITS_DIR", "PROGRESS_FILE"]

UNITS_DIR = "units"
PROGRESS_FILE = "progress.json"


def saved_config(partial: str | Path) -> dict[str, Any] | None:
    """``{"config_hash", "resolved"}`` of a partial output, or None when there is none."""
    try:
        saved = json.loads((Path(partial) / PROGRESS_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    return {"config_hash": saved.get("config_hash"), "resolved": saved.get("resolved")}


def completed_leads(partial: str | Path) -> list[int]:
    """Per init time, the last output lead written by every one of its units (-1: none yet).

    Reads ``progress.json`` and the units' markers; ``[]`` when there is no partial output.
    """
    partial = Path(partial)
    try:
        layout = json.loads((partial / PROGRESS_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return []
    done: list[int | None] = [None] * layout["n_inits"]
    for unit in work_units(layout["n_inits"], layout["members"], layout["member_chunk"]):
        try:
            completed = int(json.loads((partial / UNITS_DIR / f"{unit.key}.json").read_text())["completed"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            completed = -1
        previous = done[unit.init_index]
        done[unit.init_index] = completed if previous is None else min(previous, completed)
    return [-1 if d is None else d for d in done]
