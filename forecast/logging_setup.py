"""Logging set-up shared by every command: one format, levels from --verbose/--quiet."""

from __future__ import annotations

import logging
import os

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
    os.environ["FORECAST_PROGRESS"] = "0" if verbosity < 0 else os.environ.get("FORECAST_PROGRESS", "1")

