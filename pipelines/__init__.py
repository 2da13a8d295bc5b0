"""Data side of the forecasting system: sources, grids, regridding, statistics, stores.

The package never imports :mod:`forecast`; data flows one way, from a source through
this pipeline into a training store that the models read.
"""

from pipelines.errors import InputError
from pipelines.grids import Grid

__version__ = "0.1.0"
__all__ = ["Grid", "InputError", "__version__"]
