"""Shared figure helpers: a non-interactive figure, labels with units, atomic saving."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.atomic import atomic_path
from pipelines.errors import InputError

__all__ = ["figure", "save_figure", "colorbar_label", "lead_hours", "FORMATS", "NoDataToPlot"]

FORMATS = ("png", "pdf")


class NoDataToPlot(InputError):
    """The figure's data do not exist yet (no truth at a valid time, no scored lead time).

    :func:`forecast.plots.workflow.plot_run` skips such a figure with a log line; a
    forecast whose newest lead times have no truth yet is the normal case of a scheduled run.
    """


def figure(figsize: tuple[float, float]):
    """A matplotlib Figure bound to the Agg canvas (no display, no global backend switch)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, out_path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` atomically as PNG or PDF, chosen by the extension of ``out_path``."""
    out_path = Path(out_path)
    fmt = out_path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InputError(f"cannot write a figure to {out_path}: the extension must be one of .{', .'.join(FORMATS)}")
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi)
    return out_path


def colorbar_label(name: str, units: str | None) -> str:
    """``"gh (m)"``; CF exponents (``m2 s-2``) as superscripts."""
    return f"{name} ({format_units(units)})" if units and units != "1" else name


def format_units(units: str) -> str:
    """CF units to mathtext: ``"m s-1"`` -> ``"m s$^{-1}$"``, ``"(m s-1)2"`` -> ``"(m s$^{-1}$)$^{2}$"``."""
    import re

    units = units.strip()
    if match := re.match(r"^\((.+)\)(-?\d+)(.*)$", units):
        rest = format_units(match.group(3)) if match.group(3).strip() else ""
        return f"({format_units(match.group(1))})$^{{{match.group(2)}}}$ {rest}".strip()
    out = []
    for token in units.split():
        match = re.match(r"^([A-Za-z%]+)(-?\d+)$", token)
        out.append(f"{match.group(1)}$^{{{match.group(2)}}}$" if match else token)
    return " ".join(out)


def lead_hours(lead) -> float:
    """A lead time (timedelta64, Timedelta or hours) in hours."""
    if isinstance(lead, (int, float)):
        return float(lead)
    return pd.Timedelta(lead).total_seconds() / 3600.0
