"""The Spherical Fourier Neural Operator, one concept per module (as torch-harmonics lays out its own):

* :mod:`~forecast.models.sfno.sht` - fast spherical-harmonic transforms of channels-last fields,
  with hand-written adjoints;
* :mod:`~forecast.models.sfno.convolution` - the per-degree spectral convolution;
* :mod:`~forecast.models.sfno.conditioning` - noise and step conditioning, noise spectra;
* :mod:`~forecast.models.sfno.network` - the blocks and the model, :class:`SFNO`.
"""

from forecast.models.sfno.conditioning import (NoiseConditioning, StepEmbedding, StepModulation, noise_degree_sigma,
                                               white_noise_scale)
from forecast.models.sfno.convolution import SpectralConvS2
from forecast.models.sfno.network import SFNO, PositionEmbedding, SFNOBlock
from forecast.models.sfno.sht import ChannelsLastInverseRealSHT, ChannelsLastRealSHT

__all__ = ["SFNO", "SFNOBlock", "PositionEmbedding", "SpectralConvS2", "ChannelsLastRealSHT",
           "ChannelsLastInverseRealSHT", "NoiseConditioning", "StepEmbedding", "StepModulation", "noise_degree_sigma",
           "white_noise_scale"]
