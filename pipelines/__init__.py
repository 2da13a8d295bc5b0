"""Data side of the forecasting system: sources, grids, regridding, statistics, stores.

The package never imports :mod:`forecast`; data flows one way, from a source through
this pipeline into a training store that the models read.
"""

from pipelines.errors import InputError

__version__ = "0.1.0"
__all__ = ["Grid", "InputError", "__version__"]


def __getattr__(name: str):
    # Grid pulls in torch (via torch-harmonics' quadrature): import it on first use only,
    # so that `forecast --help` and other light paths stay fast.
    if name == "Grid":
        from pipelines.grids import Grid

        return Grid
    raise AttributeError(name)
