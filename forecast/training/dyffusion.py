r"""The two training stages of Spherical DYffusion (:mod:`forecast.models.dyffusion`).

A sample is the path :math:`x_t, x_{t+1}, \dots, x_{t+h}` of normalised states at every
store step of one model step, ``(B, h+1, C, H, W)``, with the forcings at :math:`t`.

* Stage ``interpolator``: :math:`i \sim U\{1..h-1\}` per sample, loss the area-weighted MSE
  of :math:`I(x_t, x_{t+h}, i)` against :math:`x_{t+i}` (dropout on).
* Stage ``forecaster``: :math:`i \sim U\{0..h-1\}`, :math:`\tilde x = x_t` for :math:`i = 0`,
  else the frozen interpolator's :math:`I(x_t, x_{t+h}, i)` with its dropout on (no
  gradient); loss the area-weighted L1 of :math:`F(\tilde x, i)` against :math:`x_{t+h}`.

The step :math:`i` and the dropout masks of sample :math:`b` come from generators seeded by
the sample's seed (its epoch and index) and the stage only, so the loss of a global batch
is the same however it is split over processes, and a resumed run draws what an
uninterrupted one would.
"""

from __future__ import annotations

import torch
from torch import nn

from forecast.losses import AreaWeightedMSE
from forecast.models.base import seeded_generator
from forecast.models.dyffusion import DYffusion
from forecast.models.layers import DropoutMasks

__all__ = ["STAGES", "DYffusionObjective", "AreaWeightedL1"]

STAGES = ("interpolator", "forecaster")


class AreaWeightedL1(AreaWeightedMSE):
    """Area- and variable-weighted mean absolute error, ``(B, C, H, W) x (B, C, H, W) -> ()``."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((prediction.float() - target.float()).abs() * self.weights).mean()


class DYffusionObjective(nn.Module):
    """The loss of one stage, ``(path (B, h+1, C, H, W), forcings (B, F, H, W), seeds (B,)) -> ()``.

    Only the stage's network requires gradients (the other is frozen), so DDP wrapping this
    module synchronises that network alone.
    """

    def __init__(self, model: DYffusion, stage: str, mse: AreaWeightedMSE, l1: AreaWeightedL1) -> None:
        super().__init__()
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        self.model, self.stage, self.mse, self.l1 = model, stage, mse, l1
        self.select()

    def select(self) -> None:
        """Make this stage's network the one that requires gradients and freeze the other
        (objectives of both stages may share one model)."""
        self.model.interpolator.requires_grad_(self.stage == "interpolator")
        self.model.forecaster.requires_grad_(self.stage == "forecaster")

    def draws(self, seeds: torch.Tensor, low: int, high: int) -> tuple[torch.Tensor, DropoutMasks]:
        """Per-sample steps in ``low..high-1`` ``(B,)`` and dropout masks, from the seeds and the stage."""
        stage = STAGES.index(self.stage)
        steps = torch.cat([torch.randint(low, high, (1,), generator=seeded_generator(int(s), stage, 0))
                           for s in seeds.tolist()])
        masks = DropoutMasks([seeded_generator(int(s), stage, 1) for s in seeds.tolist()])
        return steps, masks

    def forward(self, path: torch.Tensor, forcings: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
        h = path.shape[1] - 1
        x0, xh = path[:, 0], path[:, h]
        rows = torch.arange(path.shape[0], device=path.device)
        if self.stage == "interpolator":
            steps, masks = self.draws(seeds, 1, h)
            prediction = self.model.interpolate(x0, xh, forcings, steps, masks)
            return self.mse(prediction, path[rows, steps.to(path.device)])
        steps, masks = self.draws(seeds, 0, h)
        with torch.no_grad():
            interpolated = self.model.interpolate(x0, xh, forcings, steps.clamp(min=1), masks)
        start = torch.where((steps == 0).to(path.device).view(-1, 1, 1, 1), x0, interpolated)
        return self.l1(self.model.forecast(start, forcings, steps), xh)
