"""The verification metrics: one table that the scores, the files and the plots read.

Each metric has a long name (written into ``scores.nc``), a kind of units (``same`` as
the variable, ``squared``, or ``1``) and the partial sums it is computed from
(:mod:`forecast.verify.accumulate`). :data:`forecast.config.MetricName` lists the same
names for the config's validation (a test keeps the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from forecast.verify.spectra import squared_units

__all__ = ["MetricSpec", "METRICS", "metric_units"]


@dataclass(frozen=True)
class MetricSpec:
    long_name: str
    units: Literal["same", "squared", "1"]
    partials: tuple[str, ...]   # the sums of forecast.verify.accumulate it needs


METRICS: dict[str, MetricSpec] = {
    "rmse": MetricSpec("root mean squared error (members pooled)", "same", ("se",)),
    "mse": MetricSpec("mean squared error (members pooled)", "squared", ("se",)),
    "mae": MetricSpec("mean absolute error (members pooled)", "same", ("ae",)),
    "bias": MetricSpec("mean error, forecast minus truth (members pooled)", "same", ("e",)),
    "acc": MetricSpec("uncentred anomaly correlation coefficient (members and init times averaged)", "1", ("acc",)),
    "ens_rmse": MetricSpec("root mean squared error of the ensemble mean", "same", ("ens_se",)),
    "ens_mae": MetricSpec("mean absolute error of the ensemble mean", "same", ("ens_ae",)),
    "spread": MetricSpec("ensemble spread sqrt((M+1)/M * mean unbiased variance)", "same", ("var",)),
    "spread_skill": MetricSpec("spread / ensemble-mean RMSE", "1", ("var", "ens_se")),
    "crps": MetricSpec("continuous ranked probability score (ensemble, standard)", "same", ("crps",)),
    "crps_fair": MetricSpec("continuous ranked probability score (ensemble, fair)", "same", ("crps_fair",)),
}


def metric_units(metric: str, units: str) -> str:
    """Units of ``metric`` for a variable in ``units`` (``"m"`` -> ``"m2"`` for ``mse``)."""
    kind = METRICS[metric].units
    if kind == "1":
        return "1"
    if kind == "squared":
        return squared_units(units)
    return units
