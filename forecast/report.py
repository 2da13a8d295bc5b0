"""The demo's report and results file: skill on the test window against the perfect model.

``report.md`` states the data and the windows, then one table per model: for each variable
and lead time the CRPS and ensemble-mean RMSE over the perfect model's, the spread/skill
ratio (with 90 % bootstrap intervals over init times), the members' power over the truth's
at every degree (smallest and largest ratio over degrees) and the ensemble-mean RMSE over
persistence's; the perfect model's own spread/skill and spectra follow as the reference.
Then the timings and the figures (:func:`forecast.plots.workflow.plot_run`).

``results.json`` (:mod:`forecast.results`) holds the same figures for the docs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from forecast.config import DemoConfig
from forecast.results import write_results
from forecast.verify.summary import LEVEL, skill_summary
from pipelines.atomic import atomic_path

REPORT_LEADS_H = (6.0, 24.0, 72.0, 120.0)


def _fmt(triple: list[float] | None) -> str:
    if not triple:
        return "n/a"
    value, low, high = triple
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def _power(row: dict[str, Any]) -> str:
    power = row.get("power_ratio") or {}
    return f"{power['min']:.2f}-{power['max']:.3g}" if power else "n/a"


def skill_table(summary: dict[str, Any], model: str) -> list[str]:
    """Markdown rows of one model's :func:`forecast.verify.summary.skill_summary`."""
    rows = []
    for variable, per_lead in summary.items():
        for lead, row in per_lead.items():
            rows.append(f"| {model} | {variable} | {lead} h | {_fmt(row.get('crps_vs_perfect'))} "
                        f"| {_fmt(row.get('ens_rmse_vs_perfect'))} | {_fmt(row['spread_skill'])} | {_power(row)} "
                        f"| {row['ens_rmse_vs_persistence']:.2f} |")
    return rows


def _windows_line(result: Any) -> str:
    w = result.windows
    if w is None:
        return ""
    test = w.test
    return (f"Windows: training {w.train.start:%Y-%m-%d %H}h .. {w.train.end:%Y-%m-%d %H}h; validation "
            f"{w.validation.start:%Y-%m-%d %H}h .. {w.validation.end:%Y-%m-%d %H}h; test "
            f"{test.start:%Y-%m-%d %H}h .. {test.end:%Y-%m-%d %H}h ({len(test.inits)} init times).")


def write_report(result: Any, config: DemoConfig) -> Path:
    """Draw the figures of every model, write ``<workdir>/report.md`` and ``results.json``."""
    from forecast.plots.workflow import plot_run

    work = Path(result.workdir)
    leads = [h for h in REPORT_LEADS_H if h <= config.windows.lead_hours] or [config.windows.lead_hours]
    summaries = {arch: skill_summary(scores, leads) for arch, scores in result.scores.items()}
    lines = ["# Shallow-water demo report", "",
             f"Data: the stirred shallow-water flow (solver {config.swe.grid}, truncation {config.swe.lmax}), "
             f"stored on {config.grid}. {_windows_line(result)} Models: {', '.join(result.checkpoints)}; "
             f"{config.members} members. Everything below is scored on the {result.window} window, globally"
             + ("; no setting was chosen on it" if result.window == "test" else " (where settings are chosen)")
             + ". No inference-time limiter is on.", "",
             f"Ratios to the perfect model (the solver itself from the true state, stirring unknown: 1 is the "
             f"physical limit), spread/skill ((M+1)/M-corrected: 1 is calibrated), with {LEVEL:.0%} bootstrap "
             "intervals over init times; members' power over the truth's, smallest and largest over degrees "
             "l >= 1 (1 everywhere: realistic spectra).", "",
             "| model | variable | lead | CRPS / perfect | ens-mean RMSE / perfect | spread/skill | power / truth's "
             "| ens-mean RMSE / persistence |", "|---|---|---|---|---|---|---|---|"]
    figures: list[str] = []
    for arch, scores in result.scores.items():
        lines += skill_table(summaries[arch], arch)
        paths = plot_run(result.forecasts[arch], result.store, scores, work / "plots" / arch, config.plot)
        figures += [f"![{Path(p).stem}]({os.path.relpath(p, work)})" for p in paths if str(p).endswith(".png")]
    if result.perfect_model is not None and result.scores:
        reference = skill_summary(next(iter(result.scores.values())), leads, model="perfect_model")
        summaries["perfect_model"] = reference
        lines += skill_table(reference, "perfect model")
    lines += ["", "## Timings (s)", ""] + [f"- {k}: {v}" for k, v in result.timings.items()]
    lines += ["", "## Figures", ""] + figures
    target = work / "report.md"
    with atomic_path(target) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    write_results(work / "results.json", "demo", {"window": result.window, "skill": summaries,
                                                  "timings": dict(result.timings),
                                                  "config": config.model_dump(mode="json")})
    return target
