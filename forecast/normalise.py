r"""Per-variable normalisation of the state: :math:`\hat x_c = (x_c - \mu_c) / \sigma_c`.

:math:`\mu_c` and :math:`\sigma_c` are the store's area-weighted mean and standard
deviation of variable :math:`c` (physical units), computed by the pipeline over the
training period. The model sees and predicts normalised fields only.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from pipelines.errors import InputError


class Normaliser:
    """Normalise and denormalise tensors ``(..., C, H, W)`` channel by channel.

    Parameters
    ----------
    mean, std
        ``(C,)`` per-variable mean and standard deviation in physical units; ``std > 0``.
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if mean.shape != std.shape:
            raise InputError(f"normalisation mean has {mean.size} values but std has {std.size}")
        if not np.all(np.isfinite(std)) or np.any(std <= 0):
            raise InputError(f"normalisation standard deviations must be positive and finite, got {std.tolist()}")
        self.mean = mean
        self.std = std

    @classmethod
    def from_statistics(cls, statistics: xr.Dataset, variables: list[str]) -> "Normaliser":
        """Select ``variables`` (in that order) from a store's ``statistics`` group."""
        available = [str(v) for v in statistics["variable"].values]
        missing = [v for v in variables if v not in available]
        if missing:
            raise InputError(f"the store has no statistics for {', '.join(missing)}; it has {', '.join(available)}")
        stats = statistics.sel(variable=variables)
        return cls(stats["mean"].values, stats["std"].values)

    def _shaped(self, values: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        if like.ndim < 3 or like.shape[-3] != values.size:
            raise InputError(f"expected a tensor (..., {values.size}, H, W), got shape {tuple(like.shape)}")
        return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(-1, 1, 1)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Physical units -> normalised, ``(..., C, H, W)``."""
        return (x - self._shaped(self.mean, x)) / self._shaped(self.std, x)

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised -> physical units, ``(..., C, H, W)``."""
        return x * self._shaped(self.std, x) + self._shaped(self.mean, x)

    def normalise_array(self, x: np.ndarray) -> np.ndarray:
        """NumPy version of :meth:`normalise` for ``(..., C, H, W)``, returned as float32."""
        return ((x - self.mean[:, None, None]) / self.std[:, None, None]).astype(np.float32)
