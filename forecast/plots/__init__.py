"""Figures: maps of forecast, truth and error; skill curves, spread-skill, rank histograms, spectra.

All figures are drawn on matplotlib's Agg canvas (no display needed) and saved as PNG
or PDF by the output's extension. Maps use cartopy with coastlines shipped in the
package (:mod:`forecast.plots.coastlines`), so nothing is downloaded.
"""

from forecast.plots.curves import plot_rank_histogram, plot_skill_curves, plot_spectra, plot_spread_skill
from forecast.plots.maps import plot_map

__all__ = ["plot_map", "plot_skill_curves", "plot_spread_skill", "plot_rank_histogram", "plot_spectra"]
