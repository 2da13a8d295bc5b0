"""The demo's report: figures per model and a markdown skill table.

``report.md`` lists, per model and variable, the global RMSE of the forecast (all
members pooled), of its ensemble mean, of persistence and of climatology at the lead
times of :data:`REPORT_LEADS_H`, the CRPS against the ensemble-mean MAE, and the
spread/skill ratio; then links the figures drawn by :func:`forecast.plots.workflow.plot_run`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.config import DemoConfig
from pipelines.atomic import atomic_path

REPORT_LEADS_H = (6, 24, 72)


def _value(da, model: str, metric: str, lead_h: float) -> float:
    leads = pd.TimedeltaIndex(da["lead_time"].values)
    hit = np.flatnonzero(leads == pd.Timedelta(hours=lead_h))
    if hit.size == 0 or model not in da["model"].values or metric not in da["metric"].values:
        return float("nan")
    return float(da.sel(model=model, metric=metric, region="global").isel(lead_time=int(hit[0])))


def band_power(spectra, variable: str, lead_h: float) -> str:
    """Forecast over truth power in three bands of the wavenumbers the truth resolves (large,
    middle, small scales; :func:`forecast.verify.spectra.degree_bands`), e.g. ``"0.84 / 1.00 /
    1.9 (l 1-7 / 8-14 / 15-21)"``: 1 keeps the truth's energy, < 1 blurs, > 1 noise where the
    data have little."""
    from forecast.verify.spectra import band_power_ratios, degree_bands

    da = spectra[variable]
    leads = pd.TimedeltaIndex(da["lead_time"].values)
    hit = np.flatnonzero(leads == pd.Timedelta(hours=lead_h))
    if hit.size == 0:
        return "n/a"
    truth = da.sel(source="truth").isel(lead_time=int(hit[0])).values
    forecast = da.sel(source="forecast").isel(lead_time=int(hit[0])).values
    if not np.isfinite(truth).all():
        return "n/a"
    bands = degree_bands(truth)
    if not bands:
        return "n/a"
    ratios = " / ".join(f"{r:.3g}" for r in band_power_ratios(forecast, truth, bands))
    return f"{ratios} (l " + " / ".join(f"{a}-{b}" for a, b in bands) + ")"


def skill_rows(scores_path: Path, model_name: str) -> list[str]:
    """Markdown table rows: one per variable and lead time."""
    from forecast.verify.scores_file import open_scores

    ds = open_scores(scores_path)
    spectra = open_scores(scores_path, "spectra")
    rows = []
    for var in ds.data_vars:
        da = ds[var]
        units = da.attrs.get("units", "")
        for lead in REPORT_LEADS_H:
            fc, ens = _value(da, "forecast", "rmse", lead), _value(da, "forecast", "ens_rmse", lead)
            if np.isnan(fc):
                continue
            pers, clim = _value(da, "persistence", "rmse", lead), _value(da, "climatology", "rmse", lead)
            crps, ens_mae = _value(da, "forecast", "crps", lead), _value(da, "forecast", "ens_mae", lead)
            rows.append(
                f"| {model_name} | {var} ({units}) | {lead} h | {fc:.4g} | {ens:.4g} "
                f"| {pers:.4g} | {clim:.4g} | {ens / pers:.2f} | {ens / clim:.2f} | {crps:.4g} | {ens_mae:.4g} | {crps / ens_mae:.2f} | "
                f"{_value(da, 'forecast', 'spread_skill', lead):.2f} | {band_power(spectra, var, lead)} |")
    return rows


def write_report(result, config: DemoConfig) -> Path:
    """Draw the figures of every model and write ``<workdir>/report.md``; returns its path."""
    from forecast.plots.workflow import plot_run

    work = Path(result.workdir)
    lines = ["# Shallow-water demo report", "",
             f"Store: `{os.path.relpath(result.store, work)}`; models: {', '.join(result.checkpoints)}; "
             f"{config.members} members; leads up to {config.lead_hours:g} h.", "",
             "Global scores, all init times pooled. RMSE pools the members (each scored as a deterministic "
             "forecast); the ratios `/pers.` and `/clim.` are the ensemble-mean RMSE over persistence's and "
             "climatology's; spread/skill uses the (M+1)/M correction; the last column is the forecast's power "
             "over the truth's in three bands of the wavenumbers the truth resolves (large / middle / small scales).", "",
             "| model | variable | lead | RMSE | ens-mean RMSE | persistence RMSE | climatology RMSE | /pers. | /clim. "
             "| CRPS | ens-mean MAE | CRPS/ens-mean MAE | spread/skill | power / truth's, per band of l |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    figures: list[str] = []
    for arch, scores in result.scores.items():
        lines += skill_rows(Path(scores), arch)
        paths = plot_run(result.forecasts[arch], result.store, scores, work / "plots" / arch, config.plot)
        figures += [f"![{Path(p).stem}]({os.path.relpath(p, work)})" for p in paths if str(p).endswith(".png")]
    lines += ["", "## Timings (s)", ""] + [f"- {k}: {v}" for k, v in result.timings.items()]
    lines += ["", "## Figures", ""] + figures
    target = work / "report.md"
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return target
