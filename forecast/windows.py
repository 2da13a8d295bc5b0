"""Three disjoint time windows of one record: training, validation and test.

Settings are chosen on the validation window and skill is reported on the test window only,
which no choice saw (the rule of honest skill reporting: WeatherBench 2, Rasp et al. 2024).
The record is cut from its end::

    | training ..................... | validation: inits + lead | test: inits + lead |

Each scored window holds ``inits`` init times ``every_hours`` apart and the ``lead_hours``
after the last of them, so no valid time of one window falls in another, and the training
window ends one store step before the validation window's first init time (no training
target is a validation or test truth).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from pipelines.errors import InputError

__all__ = ["Window", "WindowSplit", "split_windows"]


@dataclass(frozen=True)
class Window:
    """A closed time interval ``[start, end]`` and the init times scored in it (none for training)."""

    name: str
    start: pd.Timestamp
    end: pd.Timestamp
    inits: tuple[pd.Timestamp, ...] = ()

    def overlaps(self, other: "Window") -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass(frozen=True)
class WindowSplit:
    """The training, validation and test windows; disjoint (checked on construction)."""

    train: Window
    validation: Window
    test: Window

    def __post_init__(self) -> None:
        windows = (self.train, self.validation, self.test)
        for i, a in enumerate(windows):
            if a.end < a.start:
                raise InputError(f"the {a.name} window is empty ({a.start} .. {a.end}); lengthen the record")
            for b in windows[i + 1:]:
                if a.overlaps(b):
                    raise InputError(f"the {a.name} window ({a.start} .. {a.end}) overlaps the {b.name} window "
                                     f"({b.start} .. {b.end}); the windows must be disjoint")


def _scored(name: str, end: pd.Timestamp, inits: int, every_hours: float, lead_hours: float) -> Window:
    """The scored window whose last valid time is ``end``."""
    every, lead = pd.Timedelta(hours=every_hours), pd.Timedelta(hours=lead_hours)
    first = end - lead - (inits - 1) * every
    return Window(name, first, end, tuple(first + k * every for k in range(inits)))


def split_windows(times: pd.DatetimeIndex, inits: int, every_hours: float, lead_hours: float) -> WindowSplit:
    """Cut ``times`` (regular, sorted) into training, validation and test windows, from the end.

    Raises
    ------
    InputError
        If the record is too short to hold the two scored windows and some training.
    """
    if inits < 1 or every_hours <= 0 or lead_hours <= 0:
        raise InputError(f"windows need inits >= 1, every_hours > 0 and lead_hours > 0; got {inits}, "
                         f"{every_hours:g}, {lead_hours:g}")
    step = times[1] - times[0] if len(times) > 1 else pd.Timedelta(hours=1)
    test = _scored("test", times[-1], inits, every_hours, lead_hours)
    validation = _scored("validation", test.start - step, inits, every_hours, lead_hours)
    train = Window("training", times[0], validation.start - step)
    if train.end <= train.start:
        span = (times[-1] - times[0]) / pd.Timedelta(days=1)
        need = 2 * (lead_hours + (inits - 1) * every_hours) / 24
        raise InputError(f"the record ({span:g} days) is too short for a validation and a test window of {inits} "
                         f"inits every {every_hours:g} h with {lead_hours:g} h leads ({need:g} days) and training "
                         "before them; simulate more days")
    return WindowSplit(train, validation, test)
