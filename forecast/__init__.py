"""Models, training, rollout, verification, plots and the ``forecast`` command line.

Reads training stores written by :mod:`pipelines`; never the other way round.
"""

__version__ = "0.1.0"
