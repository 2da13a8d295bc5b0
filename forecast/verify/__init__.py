"""Verification: area-weighted deterministic and ensemble scores, spectra, baselines.

Metric functions take and return xarray objects, reduce over the dims the caller
names, weight by :meth:`pipelines.grids.Grid.area_weights` (optionally masked to a
region) and leave NaNs out (see :mod:`forecast.verify.deterministic`). The command
``forecast verify`` is :func:`forecast.verify.workflow.verify`.
"""

from forecast.verify.baselines import climatology_at, climatology_forecast, persistence, valid_times
from forecast.verify.deterministic import acc, bias, mae, mse, rmse, weighted_mean
from forecast.verify.ensemble import crps_ensemble, ensemble_mean_mae, ensemble_mean_rmse, rank_histogram, spread, spread_skill_ratio
from forecast.verify.regions import REGIONS, region_weights
from forecast.verify.spectra import power_spectrum, spectrum_ratio

__all__ = [
    "weighted_mean", "mse", "rmse", "mae", "bias", "acc",
    "ensemble_mean_rmse", "ensemble_mean_mae", "spread", "spread_skill_ratio", "crps_ensemble", "rank_histogram",
    "power_spectrum", "spectrum_ratio", "persistence", "climatology_forecast", "climatology_at", "valid_times",
    "REGIONS", "region_weights",
]
