"""The skill summary a report shows: ratios to the perfect model and calibration, with intervals.

:func:`skill_summary` reads a scores file (``forecast verify`` with ``--perfect-model``) and
returns plain numbers (JSON types) per variable and lead time:

* ``crps_vs_perfect``, ``ens_rmse_vs_perfect``: the forecast's CRPS and ensemble-mean RMSE over
  the perfect model's (1 is the physical limit), with paired 90 % bootstrap intervals over init
  times (:mod:`forecast.verify.bootstrap`);
* ``spread_skill``: the forecast's spread/skill ratio (1 is calibrated; the :math:`(M+1)/M`
  correction makes a perfect ensemble score 1), with its interval;
* ``ens_rmse_vs_persistence``: the ensemble-mean RMSE over persistence's;
* ``power_ratio``: the forecast members' power over the truth's at every degree of the grid
  (the smallest and the largest over degrees ``1 ..``), from the scores' spectra.

Reports, results files and benchmarks take their figures from here, so one function states
what each figure means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecast.verify.bootstrap import interval, open_init_sums, ratio_interval
from forecast.verify.scores_file import open_scores

__all__ = ["skill_summary", "LEVEL"]

LEVEL = 0.9


def _at(ds: Any, hours: float) -> int | None:
    leads = pd.TimedeltaIndex(ds["lead_time"].values) / pd.Timedelta(hours=1)
    hit = np.flatnonzero(np.isclose(leads, hours))
    return int(hit[0]) if hit.size else None


def _triple(ds: Any, i: int) -> list[float]:
    return [round(float(ds[k].isel(lead_time=i)), 4) for k in ("value", "low", "high")]


def _power(spectra: Any, variable: str, i: int, source: str) -> dict[str, float]:
    da = spectra[variable].isel(lead_time=i)
    if source not in da["source"].values:
        return {}
    ratio = (da.sel(source=source) / da.sel(source="truth")).values[1:]
    ratio = ratio[np.isfinite(ratio)]
    return {"min": round(float(ratio.min()), 4), "max": round(float(ratio.max()), 4)} if ratio.size else {}


def skill_summary(scores: str | Path, lead_hours: list[float], region: str = "global", model: str = "forecast",
                  n_resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """``{variable: {lead_hours: {figure: value or [value, low, high]}}}`` of ``model`` (the
    forecast, or ``perfect_model`` for the reference's own calibration and spectra; see the
    module docstring); ratios to the perfect model are left out when the scores have none."""
    ds, spectra = open_scores(scores), open_scores(scores, "spectra")
    sums, members = open_init_sums(scores)
    sums = sums.sel(region=region)
    has_perfect = "perfect_model" in ds["model"].values and model != "perfect_model"
    out: dict[str, Any] = {}
    for variable in ds.data_vars:
        name = str(variable)
        per_lead: dict[str, Any] = {}
        calib = interval(sums, members, name, "spread_skill", model, LEVEL, n_resamples, seed)
        ratios = {metric: ratio_interval(sums, members, name, metric, model, "perfect_model", LEVEL,
                                         n_resamples, seed) for metric in ("crps", "ens_rmse")} if has_perfect else {}
        scores_at = ds[name].sel(region=region)
        for hours in lead_hours:
            i = _at(ds, hours)
            if i is None:
                continue
            row: dict[str, Any] = {"spread_skill": _triple(calib, i), "power_ratio": _power(spectra, name, i, model)}
            for metric, values in ratios.items():
                row[f"{metric}_vs_perfect"] = _triple(values, i)
            pers = float(scores_at.sel(model="persistence", metric="ens_rmse").isel(lead_time=i)) \
                if "persistence" in ds["model"].values else float("nan")
            row["ens_rmse_vs_persistence"] = round(float(scores_at.sel(model=model, metric="ens_rmse")
                                                         .isel(lead_time=i)) / pers, 4)
            per_lead[f"{hours:g}"] = row
        out[name] = per_lead
    return out
