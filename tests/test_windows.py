"""Training, validation and test windows: disjoint, from the end of the record."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from forecast.windows import Window, WindowSplit, split_windows
from pipelines.errors import InputError

TIMES = pd.date_range("2020-01-01", periods=40 * 24, freq="1h")


def test_split_is_disjoint_and_ends_with_the_record():
    split = split_windows(TIMES, inits=8, every_hours=12, lead_hours=120)
    assert split.test.end == TIMES[-1] and len(split.test.inits) == len(split.validation.inits) == 8
    assert split.test.inits[0] == split.test.start and split.test.inits[-1] + pd.Timedelta(hours=120) == TIMES[-1]
    assert split.validation.end < split.test.start and split.train.end < split.validation.start
    assert split.validation.end + pd.Timedelta(hours=1) == split.test.start
    assert split.train.end + pd.Timedelta(hours=1) == split.validation.start == split.validation.inits[0]
    assert split.train.start == TIMES[0]


def test_overlapping_windows_are_refused():
    a, b = pd.Timestamp("2020-01-05"), pd.Timestamp("2020-01-10")
    with pytest.raises(InputError, match="overlaps the validation window"):
        WindowSplit(Window("training", pd.Timestamp("2020-01-01"), b), Window("validation", a, b),
                    Window("test", pd.Timestamp("2020-01-11"), pd.Timestamp("2020-01-12")))


def test_a_short_record_is_refused():
    with pytest.raises(InputError, match="too short"):
        split_windows(TIMES[:200], inits=8, every_hours=12, lead_hours=120)


def test_no_config_in_configs_sets_the_spectral_cap():
    """The cap is an opt-in safeguard: no shipped config turns it on."""
    configs = Path(__file__).resolve().parents[1] / "configs"
    def settings(node, where=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield f"{where}{key}", value
                yield from settings(value, f"{where}{key}.")

    for path in configs.rglob("*.yaml"):
        for key, value in settings(yaml.safe_load(path.read_text()) or {}):
            assert not (key.split(".")[-1] == "spectral_cap" and value is not None), f"{path}: {key}"
