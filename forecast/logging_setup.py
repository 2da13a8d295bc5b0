"""Logging set-up shared by every command: one format, levels from --verbose/--quiet."""

from __future__ import annotations

import logging
import os
import warnings

LOGGER_NAMES = ("forecast", "pipelines")


def configure_logging(verbosity: int = 0) -> None:
    """``verbosity``: -1 quiet (warnings only), 0 info, 1 debug."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    for name in LOGGER_NAMES:
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # Zarr v3 notes that consolidated metadata and fixed-length strings are not in its spec
    # yet; both are read back fine by zarr-python and xarray, so keep them out of users' way.
    warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
    warnings.filterwarnings("ignore", message=r"The data type .* does not have a Zarr V3 specification")
    os.environ["FORECAST_PROGRESS"] = "0" if verbosity < 0 else os.environ.get("FORECAST_PROGRESS", "1")

