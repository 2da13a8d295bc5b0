"""Autoregressive ensemble rollouts (``forecast rollout``).

* :func:`rollout` (:mod:`.run`): config -> streamed, resumable forecast file, one loop over
  the units of (init time, member block);
* :mod:`.plan`: what to run, resolved and checked before anything is written
  (:mod:`.times`: lead, output interval and init times; :mod:`.models`: the checkpoints);
* :mod:`.output`: the output checked, locked, hashed, refused or resumed;
* :func:`open_forecast` (:mod:`.io`): read it back (layout documented there);
* :mod:`.perturbations`: initial-condition perturbations (one ``Perturbation`` protocol) and
  their factory;
* :mod:`.engine`: members batched through one model or several, blow-up checks;
* :mod:`.initial`: initial conditions from a store or ERA5-convention files.
"""

from forecast.rollout.engine import BlowUpError, BoundsCheck, RolloutEngine
from forecast.rollout.io import open_forecast
from forecast.rollout.perturbations import BredVector, Centred, Compose, Identity, Perturbation, SphericalGaussian
from forecast.rollout.run import rollout
from forecast.rollout.times import parse_init_times, parse_lead

__all__ = ["rollout", "open_forecast", "parse_lead", "parse_init_times", "RolloutEngine", "BoundsCheck",
           "BlowUpError", "Perturbation", "SphericalGaussian", "BredVector", "Compose", "Centred", "Identity"]
