"""Autoregressive ensemble rollouts (``forecast rollout``).

* :func:`rollout` (:mod:`.workflow`): config -> streamed, resumable forecast file;
* :func:`open_forecast` (:mod:`.io`): read it back (layout documented there);
* :mod:`.perturbations`: initial-condition perturbations (one ``Perturbation`` protocol);
* :mod:`.engine`: members batched through one model or several, blow-up checks;
* :mod:`.initial`: initial conditions from a store or ERA5-convention files.
"""

from forecast.rollout.engine import BlowUpError, BoundsCheck, RolloutEngine
from forecast.rollout.io import open_forecast
from forecast.rollout.perturbations import BredVector, Centred, Compose, Identity, Perturbation, SphericalGaussian
from forecast.rollout.workflow import parse_init_times, parse_lead, rollout

__all__ = ["rollout", "open_forecast", "parse_lead", "parse_init_times", "RolloutEngine", "BoundsCheck",
           "BlowUpError", "Perturbation", "SphericalGaussian", "BredVector", "Compose", "Centred", "Identity"]
