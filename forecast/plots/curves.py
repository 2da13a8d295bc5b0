"""Figures from ``scores.nc``: skill curves, spread-skill, rank histograms, spectra.

Each function takes the scores (a path, or the Dataset/group from
:func:`forecast.verify.scores_file.open_scores`), a variable and an output path
(``.png``/``.pdf``), and returns the path written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from forecast.plots.style import NoDataToPlot, colorbar_label, figure, format_units, lead_hours, save_figure
from forecast.verify.registry import metric_units
from forecast.verify.scores_file import open_scores
from pipelines.errors import InputError

__all__ = ["plot_skill_curves", "plot_spread_skill", "plot_rank_histogram", "plot_spectra"]

MODEL_STYLE: dict[str, dict[str, str | float]] = {"forecast": {"color": "C0", "marker": "o"}, "persistence": {"color": "C1", "ls": "--"},
               "climatology": {"color": "C2", "ls": ":"}, "perfect_model": {"color": "k", "ls": "-", "lw": 1.2}}
MODEL_LABEL = {"perfect_model": "perfect model (limit)"}
RATIO_RANGE = (0.05, 20.0)   # the spectral-ratio panel's axis; values beyond sit on its edge
METRIC_LABEL = {"rmse": "RMSE", "mse": "MSE", "mae": "MAE", "bias": "bias", "acc": "ACC", "ens_rmse": "ensemble-mean RMSE",
                "spread": "spread", "spread_skill": "spread/skill", "crps": "CRPS", "crps_fair": "fair CRPS"}


def _scores(scores: str | Path | xr.Dataset, group: str | None = None) -> xr.Dataset:
    return open_scores(scores, group) if isinstance(scores, (str, Path)) else scores


def _variable(ds: xr.Dataset, variable: str) -> xr.DataArray:
    if variable not in ds.data_vars:
        raise InputError(f"variable {variable!r} is not in the scores; they have {', '.join(map(str, ds.data_vars))}")
    return ds[variable]


def _pick(da: xr.DataArray, **sel) -> xr.DataArray:
    for dim, value in sel.items():
        if value not in da[dim].values:
            raise InputError(f"{dim} {value!r} is not in the scores; expected one of {', '.join(map(str, da[dim].values))}")
    return da.sel(sel)


def _lead_axis(ax, da: xr.DataArray) -> np.ndarray:
    ax.set_xlabel("lead time (h)")
    ax.grid(alpha=0.3)
    return np.array([lead_hours(t) for t in da["lead_time"].values])


def plot_skill_curves(scores, variable: str, metric: str, out: str | Path, region: str = "global",
                      dpi: int = 120) -> Path:
    """``metric`` against lead time for the forecast and every baseline in the scores."""
    full = _variable(_scores(scores), variable)
    da = _pick(full, metric=metric, region=region)
    units = metric_units(metric, da.attrs.get("units", "1"))
    fig = figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    hours = _lead_axis(ax, da)
    for model in da["model"].values:
        label = "forecast (members)" if model == "forecast" and metric == "rmse" else MODEL_LABEL.get(str(model),
                                                                                                     str(model))
        ax.plot(hours, da.sel(model=model).values, label=label, **MODEL_STYLE.get(str(model), {}))
    if metric == "rmse" and "ens_rmse" in full["metric"].values:
        mean = full.sel(model="forecast", metric="ens_rmse", region=region).values
        if not np.allclose(mean, da.sel(model="forecast").values, equal_nan=True):  # an ensemble
            ax.plot(hours, mean, label="forecast (ensemble mean)", color="C0", marker="s", ls="-.")
    if metric == "bias":
        ax.axhline(0.0, color="k", lw=0.6)
    ax.set_ylabel(colorbar_label(f"{METRIC_LABEL.get(metric, metric)} of {variable}", units))
    ax.set_title(f"{METRIC_LABEL.get(metric, metric)} of {variable}, {region}")
    ax.legend()
    return save_figure(fig, out, dpi=dpi)


def plot_spread_skill(scores, variable: str, out: str | Path, region: str = "global", dpi: int = 120) -> Path:
    """Ensemble-mean RMSE and spread (left) and their ratio (right) against lead time; the
    perfect model's, when the scores have it, as the reference."""
    full = _variable(_scores(scores), variable)
    da = _pick(full, model="forecast", region=region)
    units = da.attrs.get("units", "1")
    fig = figure(figsize=(11, 4.2))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    hours = _lead_axis(left, da)
    _lead_axis(right, da)
    left.plot(hours, _pick(da, metric="ens_rmse").values, "o-", label="ensemble-mean RMSE (skill)")
    left.plot(hours, _pick(da, metric="spread").values, "s--", label=r"spread $\sqrt{(M+1)/M}\,\sigma$")
    left.set_ylabel(colorbar_label(variable, units))
    left.set_title(f"spread and skill of {variable}, {region}")
    left.legend()
    later = hours > 0  # at lead 0 the ensemble mean is the analysis: the ratio is meaningless
    right.plot(hours[later], _pick(da, metric="spread_skill").values[later], "o-", color="C3", label="forecast")
    if "perfect_model" in full["model"].values:
        reference = full.sel(model="perfect_model", region=region)
        left.plot(hours, reference.sel(metric="ens_rmse").values, color="k", lw=1, label="perfect model's skill")
        right.plot(hours[later], reference.sel(metric="spread_skill").values[later], color="k", lw=1,
                   label="perfect model")
    right.axhline(1.0, color="k", lw=0.8, ls="--", label="consistent ensemble")
    right.set_ylabel("spread / skill (1)")
    right.set_title("spread/skill ratio (< 1: under-dispersive)")
    right.legend()
    return save_figure(fig, out, dpi=dpi)


def _lead_indices(da: xr.DataArray, lead_times_hours: list[float] | None, most: int = 4) -> list[int]:
    hours = np.array([lead_hours(t) for t in da["lead_time"].values])
    if lead_times_hours:
        return [int(np.argmin(abs(hours - h))) for h in lead_times_hours]
    usable = [i for i in range(hours.size) if hours[i] > 0 and np.isfinite(da.isel(lead_time=i)).all()]
    if not usable:
        return []
    picks = np.unique(np.linspace(0, len(usable) - 1, min(most, len(usable))).round().astype(int))
    return [usable[i] for i in picks]


def plot_rank_histogram(rank_histogram, variable: str, out: str | Path, region: str = "global",
                        lead_times_hours: list[float] | None = None, dpi: int = 120) -> Path:
    """Rank histograms (relative frequency) at a few lead times; flat is 1/(M+1).

    ``rank_histogram`` is the ``rank_histogram`` group of the scores (or the scores path).
    """
    da = _pick(_variable(_scores(rank_histogram, "rank_histogram"), variable), region=region)
    leads = _lead_indices(da, lead_times_hours)
    if not leads:
        raise NoDataToPlot(f"the rank histogram of {variable} has no lead time with data")
    fig = figure(figsize=(3.2 * len(leads) + 0.6, 3.6))
    flat = 1.0 / da.sizes["rank"]
    for k, i in enumerate(leads):
        ax = fig.add_subplot(1, len(leads), k + 1, sharey=fig.axes[0] if k else None)
        h = da.isel(lead_time=i)
        ax.bar(h["rank"].values, h.values, width=0.85, color="C0")
        ax.axhline(flat, color="k", ls="--", lw=0.8, label=f"flat 1/(M+1) = {flat:.2f}")
        ax.set_xlabel("rank of the truth (members below it)")
        ax.set_title(f"lead {lead_hours(h['lead_time'].values):g} h")
        ax.set_xticks(h["rank"].values)
        if k == 0:
            ax.set_ylabel("relative frequency (1)")
            ax.legend(fontsize=8)
    fig.suptitle(f"rank histogram of {variable}, {region} (area-weighted)")
    return save_figure(fig, out, dpi=dpi)


def plot_spectra(spectra, variable: str, out: str | Path, lead_times_hours: list[float] | None = None,
                 dpi: int = 120) -> Path:
    """Power spectra of forecast and truth (left, log-log) and their ratio (right), over the
    degrees the truth resolves (:func:`pipelines.harmonics.degree_bands`: above them the ratio
    divides by round-off). The ratio axis spans :data:`RATIO_RANGE` (values beyond sit on its
    edge), with the band 0.5-2 shaded; the perfect model's ratio is dashed when the scores have it.

    ``spectra`` is the ``spectra`` group of the scores (or the scores path).
    """
    from pipelines.harmonics import degree_bands

    da = _variable(_scores(spectra, "spectra"), variable)
    leads = _lead_indices(da, lead_times_hours)
    if not leads:
        raise NoDataToPlot(f"the spectra of {variable} have no lead time with data")
    l = da["wavenumber"].values
    resolved = degree_bands(da.sel(source="truth").isel(lead_time=leads[0]).values)
    top = resolved[-1][1] if resolved else int(l.max())
    keep = (l >= 1) & (l <= top)  # l = 0 is the global mean: not on a log axis
    sources = [str(s) for s in da["source"].values]
    fig = figure(figsize=(11, 4.2))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    right.axhspan(0.5, 2.0, color="0.9", label="within 2x")
    for k, i in enumerate(leads):
        colour, s = f"C{k}", da.isel(lead_time=i)
        tag = f"{lead_hours(s['lead_time'].values):g} h"
        left.loglog(l[keep], s.sel(source="truth").values[keep], color=colour, ls="--", lw=1)
        left.loglog(l[keep], s.sel(source="forecast").values[keep], color=colour, label=f"forecast, lead {tag}")
        for source, style in (("forecast", "-"), ("perfect_model", ":")):
            if source in sources:
                with np.errstate(divide="ignore", invalid="ignore"):
                    ratio = np.clip(s.sel(source=source).values / s.sel(source="truth").values, *RATIO_RANGE)
                right.semilogy(l[keep], ratio[keep], color=colour, ls=style,
                               label=f"{MODEL_LABEL.get(source, source)}, lead {tag}")
    left.plot([], [], "k--", lw=1, label="truth (dashed)")
    left.set_xlabel("total wavenumber l")
    left.set_ylabel(f"power per wavenumber ({format_units(da.attrs.get('units', '1'))})")
    left.set_title(f"power spectrum of {variable}")
    left.legend(fontsize=8)
    right.axhline(1.0, color="k", lw=0.8)
    right.set_ylim(*RATIO_RANGE)
    right.set_xlabel("total wavenumber l")
    right.set_ylabel("members' power / truth's (1)")
    right.set_title(f"spectral ratio, l 1-{top} (< 1: blurred, > 1: noisy)")
    right.legend(fontsize=7, ncol=2)
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
    return save_figure(fig, out, dpi=dpi)
