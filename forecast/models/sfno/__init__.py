"""The Spherical Fourier Neural Operator, one concept per module (as torch-harmonics lays out its own):

* :mod:`~forecast.models.sfno.sht` - fast spherical-harmonic transforms of channels-last fields,
  with hand-written adjoints;
* :mod:`~forecast.models.sfno.convolution` - the per-degree spectral convolution;
* :mod:`~forecast.models.sfno.conditioning` - noise and step conditioning, noise spectra;
* :mod:`~forecast.models.sfno.position` - the grid-free spherical-harmonic position encoding;
* :mod:`~forecast.models.sfno.factorised` - Tucker and CP factorised spectral weights;
* :mod:`~forecast.models.sfno.transform_once` - transform-once (T1) blocks;
* :mod:`~forecast.models.sfno.network` - the blocks and the model, :class:`SFNO`.
"""

from forecast.models.sfno.conditioning import (NoiseConditioning, StepEmbedding, StepModulation, noise_degree_sigma,
                                               white_noise_scale)
from forecast.models.sfno.convolution import SpectralConv, SpectralConvS2
from forecast.models.sfno.factorised import CPSpectralConvS2, TuckerSpectralConvS2, make_spectral_conv
from forecast.models.sfno.network import SFNO, PositionEmbedding, SFNOBlock
from forecast.models.sfno.position import SphericalHarmonicEncoding, real_spherical_harmonics
from forecast.models.sfno.sht import ChannelsLastInverseRealSHT, ChannelsLastRealSHT
from forecast.models.sfno.transform_once import TransformOnceBlock

__all__ = ["SFNO", "SFNOBlock", "PositionEmbedding", "SpectralConv", "SpectralConvS2", "TuckerSpectralConvS2",
           "CPSpectralConvS2", "make_spectral_conv", "SphericalHarmonicEncoding", "real_spherical_harmonics",
           "TransformOnceBlock", "ChannelsLastRealSHT",
           "ChannelsLastInverseRealSHT", "NoiseConditioning", "StepEmbedding", "StepModulation", "noise_degree_sigma",
           "white_noise_scale"]
