r"""Initial-condition perturbations for ensembles.

Every perturbation maps a batch of normalised states to perturbed states::

    perturbed = perturbation(state, generator)     # (M, C, H, W) -> (M, C, H, W)

``state`` is in normalised units (:math:`(x - \mu_c) / \sigma_c` per variable
:math:`c`), so an amplitude of 0.05 means 5 % of the variable's standard deviation.
All random numbers come from the ``torch.Generator`` that is passed in (a CPU one),
so a seed makes an ensemble bit-reproducible whatever the device.

Implementations
---------------
* :class:`SphericalGaussian`: isotropic Gaussian random fields on the sphere, from
  the Karhunen-Loeve expansion of :class:`torch_harmonics.random_fields.GaussianRandomFieldS2`.
* :class:`DataSpectrum`: random fields with the power spectrum of the data's own
  one-step tendencies (no energy at scales the data do not resolve).
* :class:`BredVector`: breeding (Toth & Kalnay 1993, 1997): a seed perturbation is
  cycled through the model over a spin-up window and rescaled, so that it points
  along the fastest-growing directions of the flow.
* :class:`Compose` applies several in turn (their perturbations add up) and
  :class:`Centred` removes the ensemble mean of the perturbations, so that the
  ensemble mean stays on the analysis.
* :func:`check_perturbation` and :class:`PerturbationFactory` (:mod:`.factory`): the
  rollout's ``perturbation`` section checked, and turned into the perturbation of an init time.
"""

from forecast.rollout.perturbations.base import (Centred, Compose, Identity, Perturbation, amplitude_vector,
                                                 weighted_rms)
from forecast.rollout.perturbations.bred import BredVector
from forecast.rollout.perturbations.factory import PerturbationFactory, check_perturbation
from forecast.rollout.perturbations.fields import DataSpectrum, SphericalGaussian, tendency_spectrum

__all__ = ["Perturbation", "SphericalGaussian", "DataSpectrum", "BredVector", "Compose", "Centred", "Identity",
           "weighted_rms", "amplitude_vector", "tendency_spectrum", "check_perturbation", "PerturbationFactory"]
