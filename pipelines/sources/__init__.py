"""Data sources that write ERA5-convention files for ``forecast prepare``.

* :mod:`pipelines.sources.swe`: the embedded shallow-water generator (torch-harmonics).
"""

from pipelines.sources.swe import SimulationError, SWEParameters, generate_swe, simulate_swe

__all__ = ["SWEParameters", "SimulationError", "generate_swe", "simulate_swe"]
