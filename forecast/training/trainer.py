"""The training loop of one process: model, DDP, optimiser, schedule, multi-step loss,
validation, and the train state a checkpoint saves and restores (see :mod:`forecast.train`)."""

from __future__ import annotations

import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from forecast.checkpoint import Checkpoint, check_compatible, load_weights, save_checkpoint
from forecast.config import TrainConfig
from forecast.data import TrajectoryDataset
from forecast.distributed import DistributedContext, all_gather_objects, all_reduce_sum, barrier
from forecast.models import model_class
from forecast.models.base import PrognosticModel, seeded_generator
from forecast.models.dyffusion import DYffusion
from forecast.models.constraints import StepConstraints, TrainedOn, build_step_constraints, constrained_step
from forecast.models.innovations import InnovationMemo
from forecast.models.spectral_cap import reference_power
from forecast.training.dyffusion import AreaWeightedL1, DYffusionObjective
from forecast.losses import AreaWeightedCRPS, AreaWeightedMSE, squared_error_sums, variable_weight_vector
from forecast.training.metrics import MetricsWriter
from forecast.training.run_data import ResumableSampler, RunData
from forecast.training.schedule import capture_rng_state, lr_factor, restore_rng_state, rollout_steps_for_epoch
from pipelines.atomic import atomic_path
from pipelines.errors import InputError

__all__ = ["Trainer", "Rollout", "TrainResult", "training_stages"]

log = logging.getLogger("forecast.train")


@dataclass
class TrainResult:
    """What a run did: last step and epoch, the per-step training losses of this
    invocation, the last checkpoint, the last validation metrics (``val_rmse_<var>`` in
    physical units, ``val_loss``), the parameter count and the estimated FLOPs per step."""

    step: int
    epoch: int
    losses: list[float] = field(default_factory=list)
    checkpoint: Path | None = None
    val_metrics: dict[str, float] = field(default_factory=dict)
    n_parameters: int = 0
    flops_per_step: int | None = None

    def saved_checkpoint(self) -> Path:
        """:attr:`checkpoint`, which every run that trains writes (a dry run does not)."""
        if self.checkpoint is None:
            raise RuntimeError("the training run wrote no checkpoint (a dry run)")
        return self.checkpoint


class Rollout(nn.Module):
    """``n`` autoregressive steps of a one-step model in one forward (one DDP forward per backward),
    each followed by the step's ``constraints`` (:func:`forecast.models.constraints.constrained_step`).

    ``state (B, C, H, W)``, ``forcings (B, n, F, H, W)`` -> predictions ``(B, n, C, H, W)``; with
    ``members`` M > 1 (a stochastic model) each sample is stepped M times with its own noise,
    -> ``(B, M, n, C, H, W)``. The noise of sample ``b``, member ``j`` and step ``s`` comes from a
    generator seeded by ``(sample_seeds[b], j, s)`` only, so it is the same whatever the
    process count, and a resumed run draws what an uninterrupted one would.
    """

    def __init__(self, model: PrognosticModel, members: int = 1, constraints: StepConstraints | None = None) -> None:
        super().__init__()
        self.model, self.members = model, members
        self.constraints = constraints if constraints is not None else StepConstraints()

    def forward(self, state: torch.Tensor, forcings: torch.Tensor,
                sample_seeds: torch.Tensor | None = None) -> torch.Tensor:
        m = self.members
        stochastic = self.model.stochastic and sample_seeds is not None
        if m > 1:
            state, forcings = state.repeat_interleave(m, dim=0), forcings.repeat_interleave(m, dim=0)
        innovations = self._innovations(sample_seeds) if stochastic and sample_seeds is not None else None
        outputs = []
        for s in range(forcings.shape[1]):
            noise = None
            if innovations is not None:
                noise = self.model.step_noise(partial(_innovation_of_step, innovations, s))
            state = constrained_step(self.model, self.constraints, state, forcings[:, s], noise)
            outputs.append(state)
        out = torch.stack(outputs, dim=1)
        return out.unflatten(0, (-1, m)) if m > 1 else out

    def _innovations(self, sample_seeds: torch.Tensor) -> InnovationMemo[int | None]:
        """The batch's innovations by training step (None: the member's own), each drawn once."""
        seeds = sample_seeds.tolist()

        def draw(step: int | None) -> torch.Tensor:
            return self.model.draw_noise([seeded_generator(seed, member) if step is None
                                          else seeded_generator(seed, member, step)
                                          for seed in seeds for member in range(self.members)])
        return InnovationMemo(draw)


def _innovation_of_step(innovations: InnovationMemo[int | None], step: int, lag: int | None) -> torch.Tensor:
    return innovations(None if lag is None else step - lag)


def training_stages(config: TrainConfig) -> list[tuple[str, int]]:
    """``(stage, epochs)`` in order: ``[("model", epochs)]``, or for DYffusion the interpolator
    (``epochs``) then the forecaster (``forecaster_epochs``, default ``epochs``)."""
    if not model_class(config.model).trained_in_stages:
        return [("model", config.epochs)]
    return [("interpolator", config.epochs), ("forecaster", config.forecaster_epochs or config.epochs)]


class Trainer:
    """State of one training run on one process."""

    def __init__(self, config: TrainConfig, world: DistributedContext, data: RunData) -> None:
        if config.batch_size % world.world_size:
            raise InputError(f"batch_size={config.batch_size} is not divisible by the {world.world_size} processes")
        self.config, self.world, self.data = config, world, data
        self.out = Path(config.out)
        self.batch_per_rank = config.batch_size // world.world_size
        self.steps_per_epoch = len(data.splits.train) // config.batch_size
        if self.steps_per_epoch == 0:
            raise InputError(f"the training period has {len(data.splits.train)} samples, fewer than "
                             f"batch_size={config.batch_size}")
        # (stage, epochs): one stage, or DYffusion's interpolator then forecaster
        self.stages = training_stages(config)
        self.total_epochs = sum(epochs for _, epochs in self.stages)
        self.total_steps = self.total_epochs * self.steps_per_epoch
        self.max_steps = self.total_steps if config.max_steps is None else min(config.max_steps, self.total_steps)
        if config.checkpoint_every < 1:
            raise InputError(f"checkpoint_every={config.checkpoint_every} must be at least 1")
        weights = variable_weight_vector(data.variables, config.variable_weights)
        self.loss_fn = AreaWeightedMSE(data.grid, weights).to(world.device)
        self.power_spectrum = training_spectrum(data.splits.train)
        # a stochastic model trained on the CRPS of its members; validation stays the one-step RMSE
        reference = self.power_spectrum if config.crps_spectral_normalised else None
        self.train_loss = (AreaWeightedCRPS(data.grid, weights, config.crps_alpha, config.crps_spectral_weight,
                                            reference).to(world.device)
                           if config.loss == "crps" else self.loss_fn)
        self.l1 = AreaWeightedL1(data.grid, weights).to(world.device)
        self.model = self._build_model()
        # the model's hyperdiffusion, if any: the cap and the conservation are rollout options
        self.constraints = build_step_constraints([config.model], TrainedOn(
            data.grid, list(data.variables), data.time_step_seconds, data.normaliser.mean, data.normaliser.std))[0]
        self.constraints.to(world.device)
        self.stage = ""
        self._configure_stage(self.stages[0][0])
        self.sampler = ResumableSampler(data.splits.train, world, config.seed, self.batch_per_rank)
        self.loader_generator = torch.Generator()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.saved_step = 0
        self.last_val: dict[str, float] = {}

    def _build_model(self) -> PrognosticModel:
        from forecast.models import build_model

        model = build_model(self.config.model, self.data.grid, len(self.data.variables), self.data.n_forcing)
        if self.config.model.residual and self.config.model.tendency_scaling:
            from forecast.data import tendency_scale

            scale = tendency_scale(self.data.splits.train)
            log.info("residual scale (std of the normalised %g h tendency): %s", self.data.time_step_seconds / 3600,
                     ", ".join(f"{v} {s:.3g}" for v, s in zip(self.data.variables, scale)))
            model.set_residual_scale(scale)
        model.set_horizon(self.data.step)
        return model.to(self.world.device)

    def stage_of(self, epoch: int) -> str:
        """The stage that trains epoch ``epoch``."""
        for stage, epochs in self.stages:
            if epoch < epochs:
                return stage
            epoch -= epochs
        return self.stages[-1][0]

    def _configure_stage(self, stage: str) -> None:
        """The trained module, its DDP wrapper, optimiser and learning-rate schedule for ``stage``
        (each stage starts its own warm-up and cosine decay, as separate runs would)."""
        config, world = self.config, self.world
        self.stage = stage
        if stage == "model":
            self.rollout: nn.Module = Rollout(self.model, config.ensemble_members, self.constraints).to(world.device)
        else:
            assert isinstance(self.model, DYffusion), "only DYffusion trains in stages"
            self.rollout = DYffusionObjective(self.model, stage, self.loss_fn, self.l1).to(world.device)
            log.info("DYffusion stage: %s", stage)
        self.ddp = (DistributedDataParallel(self.rollout, device_ids=[world.device.index] if world.device.type == "cuda"
                                            else None) if world.distributed else self.rollout)
        self.step_fn = torch.compile(self.ddp) if config.compile else self.ddp
        self.trained = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.trained, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_lambda(stage))

    def _lr_lambda(self, stage: str) -> Callable[[int], float]:
        warmup, total = self.config.warmup_steps, dict(self.stages)[stage] * self.steps_per_epoch
        return lambda step: lr_factor(step, warmup, total)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.world.device.type == "cuda" and self.config.amp in ("auto", "bf16"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- checkpoints --------------------------------------------------------------------
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            model_config=self.config.model, train_config=self.config.model_dump(), grid=self.data.grid,
            variables=self.data.variables, static_names=self.data.static_names, static=self.data.static,
            mean=self.data.normaliser.mean, std=self.data.normaliser.std,
            time_step_seconds=self.data.time_step_seconds, step=self.step, epoch=self.epoch,
            batch_in_epoch=self.batch_in_epoch, model_state=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict(), scheduler_state=self.scheduler.state_dict(),
            rng_state=[], power_spectrum=self.power_spectrum)

    def save(self) -> Path:
        """Gather every rank's RNG state; process 0 writes ``step_XXXXXXX.pt`` and ``latest.pt``."""
        rng = all_gather_objects(capture_rng_state(), self.world)
        path = self.out / "checkpoints" / f"step_{self.step:07d}.pt"
        if self.world.is_main:
            ckpt = self.checkpoint()
            ckpt.rng_state = rng
            save_checkpoint(path, ckpt)
            latest = path.with_name("latest.pt")
            for src, dst in ((path, latest), (path.with_name(path.name + ".sha256"), latest.with_name("latest.pt.sha256"))):
                with atomic_path(dst) as tmp:
                    shutil.copyfile(src, tmp)
            log.info("checkpoint %s", path)
        barrier(self.world)
        self.saved_step = self.step
        return path

    def restore(self, ckpt: Checkpoint) -> None:
        check_compatible(ckpt, self.data.grid, self.data.variables)
        load_weights(self.model, ckpt)
        self.step, self.epoch, self.batch_in_epoch = ckpt.step, ckpt.epoch, ckpt.batch_in_epoch
        self.saved_step = ckpt.step
        saved_stage = self.stage_of(ckpt.epoch)
        if self.batch_in_epoch >= self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        if self.stage_of(self.epoch) != self.stage:
            self._configure_stage(self.stage_of(self.epoch))
        # a checkpoint from the end of a stage holds the finished stage's optimiser: the next
        # stage starts afresh, as in an uninterrupted run
        if saved_stage == self.stage:
            try:
                if ckpt.optimizer_state is None or ckpt.scheduler_state is None:
                    raise KeyError("no optimiser or scheduler state")
                self.optimizer.load_state_dict(ckpt.optimizer_state)
                self.scheduler.load_state_dict(ckpt.scheduler_state)
            except (ValueError, KeyError, TypeError, RuntimeError) as exc:
                raise InputError(f"checkpoint {ckpt.path}: its optimiser or scheduler state does not fit this "
                                 f"run ({type(exc).__name__}: {str(exc)[:200]})") from None
        if len(ckpt.rng_state) == self.world.world_size:
            restore_rng_state(ckpt.rng_state[self.world.rank])
        else:
            log.warning("checkpoint was written by %d processes, this run has %d: RNG streams restart from rank 0's",
                        len(ckpt.rng_state), self.world.world_size)
            restore_rng_state(ckpt.rng_state[0])

    # -- one epoch ------------------------------------------------------------------------
    def loader(self, dataset: TrajectoryDataset, sampler: Any, seed: int, drop_last: bool = True) -> DataLoader:
        # a private generator: creating the loader's iterator must not draw from the global RNG
        self.loader_generator.manual_seed(seed)
        return DataLoader(dataset, batch_size=self.batch_per_rank, sampler=sampler, drop_last=drop_last,
                          num_workers=self.config.num_workers, generator=self.loader_generator,
                          persistent_workers=False)

    def train_step(self, batch: dict[str, torch.Tensor]) -> float:
        device = self.world.device
        state, forcings, targets = (batch[k].to(device, non_blocking=True) for k in ("state", "forcings", "targets"))
        self.ddp.train()
        if self.stage != "model":   # DYffusion: the objective returns the stage's loss
            with self.autocast():
                loss = self.step_fn(batch["path"].to(device, non_blocking=True), forcings[:, 0], batch["sample_seed"])
        else:
            with self.autocast():
                predictions = self.step_fn(state, forcings, batch["sample_seed"])
            n = targets.shape[1]
            step_axis = 2 if self.config.ensemble_members > 1 else 1   # (B, M, n, ...) or (B, n, ...)
            loss = sum(self.train_loss(predictions.select(step_axis, s), targets[:, s]) for s in range(n)) / n
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            # the stage's own parameters: a finished stage's last gradients must not enter the norm
            torch.nn.utils.clip_grad_norm_(self.trained, self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        mean_loss = all_reduce_sum(loss.detach().double().reshape(1), self.world) / self.world.world_size
        return float(mean_loss.item())

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """One-step area-weighted RMSE per variable (physical units) and the weighted loss."""
        dataset = self.data.splits.val
        if dataset is None:
            return {}
        self.model.eval()
        shard = list(range(self.world.rank, len(dataset), self.world.world_size))
        sums = torch.zeros(len(self.data.variables) + 1, dtype=torch.float64, device=self.world.device)
        lat_w = self.loss_fn.weights.new_tensor(self.data.grid.area_weights().values)
        for batch in self.loader(dataset, shard, self.config.seed, drop_last=False):
            state, forcings, targets = (batch[k].to(self.world.device) for k in ("state", "forcings", "targets"))
            with self.autocast():
                prediction = constrained_step(self.model, self.constraints, state, forcings[:, 0])
            sums[:-1] += squared_error_sums(prediction, targets[:, 0], lat_w)
            sums[-1] += state.shape[0]
        all_reduce_sum(sums, self.world)
        mse = (sums[:-1] / sums[-1]).cpu().numpy()
        weights = variable_weight_vector(self.data.variables, self.config.variable_weights)
        metrics = {f"val_rmse_{v}": float(np.sqrt(m) * s) for v, m, s in zip(self.data.variables, mse, self.data.normaliser.std)}
        metrics["val_loss"] = float((weights * mse).mean())
        return metrics

    def run_epoch(self, metrics: MetricsWriter | None, bar: Any, result: TrainResult) -> bool:
        """Train from ``batch_in_epoch`` to the end of ``self.epoch``; False once ``max_steps`` is reached."""
        n = (rollout_steps_for_epoch(self.epoch, self.config.rollout_steps, self.config.curriculum_epochs)
             if self.stage == "model" else 1)   # DYffusion's stages learn one model step
        self.data.splits.train.set_rollout_steps(n)
        self.data.splits.train.set_input_noise(self.config.input_noise, self.config.seed)
        self.data.splits.train.set_epoch(self.epoch)
        self.sampler.set_epoch(self.epoch)
        self.sampler.start_batch = self.batch_in_epoch
        max_steps = self.max_steps
        for batch in self.loader(self.data.splits.train, self.sampler, self.config.seed + self.epoch):
            lr = self.optimizer.param_groups[0]["lr"]
            loss = self.train_step(batch)
            self.step, self.batch_in_epoch = self.step + 1, self.batch_in_epoch + 1
            result.losses.append(loss)
            row: dict[str, Any] = {"step": self.step, "epoch": self.epoch, "rollout_steps": n, "lr": lr, "loss": repr(loss)}
            if self.batch_in_epoch == self.steps_per_epoch:
                self.last_val = self.validate()
                row.update({k: repr(v) for k, v in self.last_val.items()})
                self._log_epoch(loss)
            if metrics is not None:
                metrics.write(row)
                bar.update(1)
                bar.set_postfix(epoch=self.epoch, loss=f"{loss:.4g}")
            if self.step % self.config.checkpoint_every == 0 or self.step >= max_steps:
                result.checkpoint = self.save()
            if self.step >= max_steps:
                return False
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        if self.epoch < self.total_epochs and self.stage_of(self.epoch) != self.stage:
            self._configure_stage(self.stage_of(self.epoch))
        return self.epoch < self.total_epochs

    def _log_epoch(self, loss: float) -> None:
        if self.world.is_main:
            text = ", ".join(f"{k.removeprefix('val_rmse_')} {v:.4g}" for k, v in self.last_val.items() if k.startswith("val_rmse_"))
            log.info("epoch %d (step %d): loss %.4g; validation RMSE %s", self.epoch, self.step, loss, text or "n/a")


def training_spectrum(dataset: TrajectoryDataset, max_samples: int = 64) -> np.ndarray:
    """``(C, L)`` mean power per spherical-harmonic degree of up to ``max_samples`` evenly spaced
    normalised training states (the same on every process); checkpoints carry it for the
    rollout's ``spectral_cap``."""
    picks = np.unique(np.linspace(0, len(dataset.starts) - 1, min(max_samples, len(dataset.starts))).astype(int))
    return reference_power((np.asarray(dataset.states[np.array([s])], dtype=np.float64)[0]
                            for s in dataset.starts[picks]), dataset.grid)
