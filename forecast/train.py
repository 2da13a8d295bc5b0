r"""Training: one process, or data-parallel (DDP) under ``torchrun``.

``train(config)`` reads the training store, builds the model and trains it with AdamW
(linear warm-up over ``warmup_steps``, then cosine decay to 0 at the end of ``epochs``),
gradient clipping, and bf16 autocast on GPU. The loss is the area-weighted MSE of
:mod:`forecast.losses`, averaged over an autoregressive rollout of ``n`` steps;
``n`` follows a curriculum (:func:`rollout_steps_for_epoch`). After each epoch the
one-step validation RMSE per variable is computed in physical units.

Data parallelism
----------------
The global batch ``batch_size`` is split evenly over the ``WORLD_SIZE`` processes. Every
process draws the same seeded permutation of the training samples each epoch
(:class:`~torch.utils.data.DistributedSampler`, seed ``seed + epoch``, incomplete last
batch dropped); process :math:`r` takes every :math:`W`-th sample, so the union of the
per-process batches of step :math:`j` is exactly the single-process batch :math:`j`.
Each process averages its loss over its samples and DDP averages gradients, so the
update equals the single-process update with the same global batch (up to float
summation order).

Exact resume
------------
A checkpoint stores the model, optimiser and scheduler states, every process's RNG
states and the position (epoch, batches done in it). ``resume=True`` restores them
and skips the batches already seen, so the continued loss trajectory is the one of an
uninterrupted run. ``max_steps`` stops a run early without changing the learning-rate
schedule, whose length is always ``epochs`` epochs.

Outputs (process 0), under ``config.out``: ``checkpoints/step_XXXXXXX.pt`` (+ ``.sha256``)
every ``checkpoint_every`` steps and at the end, ``checkpoints/latest.pt``, ``metrics.csv``
(one row per step, validation columns filled at the end of each epoch), ``config.yaml``
(the resolved config) and ``tensorboard/`` when the optional ``tensorboard`` package is
installed.

Module entry point (also for ``torchrun``)::

    python -m forecast.train --config configs/train.yaml [--resume] [--dry-run] [key=value ...]
    torchrun --nproc_per_node=2 -m forecast.train --config configs/train.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from forecast.checkpoint import Checkpoint, check_compatible, load_checkpoint, save_checkpoint
from forecast.config import TrainConfig
from forecast.data import Splits, TrajectoryDataset, build_splits, load_state_array, model_step, split_masks
from forecast.distributed import (DistributedContext, all_gather_objects, all_reduce_sum, barrier,
                                  cleanup_distributed, setup_distributed)
from forecast.forcings import forcing_names, normalise_static
from forecast.losses import AreaWeightedMSE, squared_error_sums, variable_weight_vector
from forecast.normalise import Normaliser
from pipelines.atomic import atomic_path
from pipelines.config import config_differences
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.progress import progress_bar
from pipelines.store import open_store

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


# -- schedules and seeding ----------------------------------------------------------------
def rollout_steps_for_epoch(epoch: int, rollout_steps: int, curriculum_epochs: int) -> int:
    """1 step during the first ``curriculum_epochs`` epochs, then one more each epoch up to ``rollout_steps``."""
    if epoch < curriculum_epochs:
        return 1
    return min(rollout_steps, 2 + epoch - curriculum_epochs)


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Linear warm-up from ``1/warmup`` to 1 over ``warmup_steps``, then cosine decay to 0 at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed Python, NumPy and torch; deterministic kernels on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)


def capture_rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# -- data ------------------------------------------------------------------------------------
@dataclass
class RunData:
    """The store's content as the run needs it."""

    grid: Grid
    variables: list[str]
    normaliser: Normaliser
    static_names: list[str]
    static: np.ndarray | None
    step: int                 # model step in store steps
    time_step_seconds: float  # model step
    splits: Splits

    @property
    def n_forcing(self) -> int:
        return len(forcing_names(self.static_names))


def load_run_data(config: TrainConfig) -> RunData:
    """Open the store, select variables, normalise, split by time and build the datasets."""
    store = open_store(config.store)
    variables = list(config.variables) if config.variables else store.variables
    normaliser = Normaliser.from_statistics(store.statistics, variables)
    grid = store.grid
    static_names, static = normalise_static(store.static, grid)
    step = model_step(store.time_step, config.step_hours)
    if config.rollout_steps < 1:
        raise InputError(f"rollout_steps={config.rollout_steps} must be at least 1")
    states = load_state_array(store.data, variables, normaliser)
    masks = split_masks(store.times, config.train_start, config.train_end, config.val_start, config.val_end,
                        config.val_fraction)
    splits = build_splits(states, store.times, grid, static, store.time_step, step, config.rollout_steps, masks)
    return RunData(grid=grid, variables=variables, normaliser=normaliser, static_names=static_names, static=static,
                   step=step, time_step_seconds=step * store.time_step.total_seconds(), splits=splits)


class ResumableSampler(DistributedSampler):
    """:class:`DistributedSampler` that can start ``start_batch`` batches into an epoch."""

    def __init__(self, dataset: Dataset, world: DistributedContext, seed: int, batch_per_rank: int) -> None:
        super().__init__(dataset, num_replicas=world.world_size, rank=world.rank, shuffle=True, seed=seed,
                         drop_last=True)
        self.batch_per_rank = batch_per_rank
        self.start_batch = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start_batch * self.batch_per_rank:])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.start_batch * self.batch_per_rank)


class Rollout(nn.Module):
    """``n`` autoregressive steps of a one-step model in one forward (one DDP forward per backward).

    ``state (B, C, H, W)``, ``forcings (B, n, F, H, W)`` -> predictions ``(B, n, C, H, W)``.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, state: torch.Tensor, forcings: torch.Tensor) -> torch.Tensor:
        outputs = []
        for s in range(forcings.shape[1]):
            state = self.model(state, forcings[:, s])
            outputs.append(state)
        return torch.stack(outputs, dim=1)


# -- metrics ---------------------------------------------------------------------------------
class MetricsWriter:
    """``metrics.csv`` (one row per step) and, when available, TensorBoard scalars. Process 0 only."""

    def __init__(self, out: Path, variables: list[str], start_step: int, use_tensorboard: bool) -> None:
        self.path = out / "metrics.csv"
        self.columns = ["step", "epoch", "rollout_steps", "lr", "loss", "val_loss", *[f"val_rmse_{v}" for v in variables]]
        self._keep_rows_up_to(start_step)
        self.tb = _tensorboard_writer(out / "tensorboard") if use_tensorboard else None

    def _keep_rows_up_to(self, step: int) -> None:
        """Start a new file, or on resume drop rows written after the checkpoint."""
        rows = []
        if step > 0 and self.path.is_file():
            with open(self.path, newline="") as handle:
                rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= step]
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, fieldnames=self.columns).writerow({k: row.get(k, "") for k in self.columns})
        if self.tb is not None:
            for key, value in row.items():
                if key not in ("step", "epoch") and value != "":
                    self.tb.add_scalar(key, float(value), int(row["step"]))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _tensorboard_writer(path: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard is not installed (pip install 'sphere-forecast[tensorboard]'); metrics go to CSV only")
        return None
    return SummaryWriter(str(path))


# -- the trainer ---------------------------------------------------------------------------------
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
        self.total_steps = config.epochs * self.steps_per_epoch
        self.max_steps = self.total_steps if config.max_steps is None else min(config.max_steps, self.total_steps)
        if config.checkpoint_every < 1:
            raise InputError(f"checkpoint_every={config.checkpoint_every} must be at least 1")
        self.model = self._build_model()
        self.rollout = Rollout(self.model).to(world.device)
        self.ddp = (DistributedDataParallel(self.rollout, device_ids=[world.device.index] if world.device.type == "cuda"
                                            else None) if world.distributed else self.rollout)
        self.step_fn = torch.compile(self.ddp) if config.compile else self.ddp
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_lambda())
        weights = variable_weight_vector(data.variables, config.variable_weights)
        self.loss_fn = AreaWeightedMSE(data.grid, weights).to(world.device)
        self.sampler = ResumableSampler(data.splits.train, world, config.seed, self.batch_per_rank)
        self.loader_generator = torch.Generator()
        self.step, self.epoch, self.batch_in_epoch = 0, 0, 0
        self.saved_step = 0
        self.last_val: dict[str, float] = {}

    def _build_model(self) -> nn.Module:
        from forecast.models import build_model

        model = build_model(self.config.model, self.data.grid, len(self.data.variables), self.data.n_forcing)
        if self.config.model.residual and self.config.model.tendency_scaling:
            from forecast.data import tendency_scale

            scale = tendency_scale(self.data.splits.train)
            log.info("residual scale (std of the normalised %g h tendency): %s", self.data.time_step_seconds / 3600,
                     ", ".join(f"{v} {s:.3g}" for v, s in zip(self.data.variables, scale)))
            model.set_residual_scale(scale)
        return model.to(self.world.device)

    def _lr_lambda(self) -> Callable[[int], float]:
        warmup, total = self.config.warmup_steps, self.total_steps
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
            rng_state=[])

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
        self.model.load_state_dict(ckpt.model_state)
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        self.scheduler.load_state_dict(ckpt.scheduler_state)
        self.step, self.epoch, self.batch_in_epoch = ckpt.step, ckpt.epoch, ckpt.batch_in_epoch
        self.saved_step = ckpt.step
        if self.batch_in_epoch >= self.steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0
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
        with self.autocast():
            predictions = self.step_fn(state, forcings)
        n = targets.shape[1]
        loss = sum(self.loss_fn(predictions[:, s], targets[:, s]) for s in range(n)) / n
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
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
                prediction = self.model(state, forcings[:, 0])
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
        n = rollout_steps_for_epoch(self.epoch, self.config.rollout_steps, self.config.curriculum_epochs)
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
        return self.epoch < self.config.epochs

    def _log_epoch(self, loss: float) -> None:
        if self.world.is_main:
            text = ", ".join(f"{k.removeprefix('val_rmse_')} {v:.4g}" for k, v in self.last_val.items() if k.startswith("val_rmse_"))
            log.info("epoch %d (step %d): loss %.4g; validation RMSE %s", self.epoch, self.step, loss, text or "n/a")


# -- entry points --------------------------------------------------------------------------------
def _prepare_out(config: TrainConfig, resume: bool) -> Checkpoint | None:
    """The checkpoint to resume from (or None); refuse to overwrite another run's checkpoints."""
    latest = Path(config.out) / "checkpoints" / "latest.pt"
    if resume:
        if not latest.exists():
            raise InputError(f"nothing to resume: {latest} does not exist; run without --resume first")
        ckpt = load_checkpoint(latest)
        changed = config_differences(ckpt.model_config.model_dump(mode="json"), config.model.model_dump(mode="json"))
        if changed:
            raise InputError(f"cannot resume {latest} with another model (model.{'; model.'.join(changed)}); "
                             f"resume with the run's own settings ({Path(config.out) / 'config.yaml'}) or train "
                             "into another out directory")
        return ckpt
    if latest.exists():
        raise InputError(f"{config.out} already holds a training run ({latest}); pass --resume to continue it "
                         "or choose another out directory")
    return None


def _write_config(config: TrainConfig) -> None:
    path = Path(config.out) / "config.yaml"
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(config.model_dump(), sort_keys=False))


def dry_run_report(trainer: Trainer) -> TrainResult:
    """Print the parameter count and the estimated FLOPs of one optimiser step (global batch)."""
    from forecast.models.base import count_parameters, estimate_flops

    cfg, data = trainer.config, trainer.data
    n_params = count_parameters(trainer.model)
    per_sample = estimate_flops(trainer.model, data.grid, len(data.variables), data.n_forcing, backward=True)
    flops = per_sample * cfg.rollout_steps * cfg.batch_size
    if trainer.world.is_main:
        print(f"model: {cfg.model.architecture} on {data.grid}, {len(data.variables)} state + {data.n_forcing} forcing channels")
        print(f"parameters: {n_params:,}")
        print(f"estimated FLOPs per step: {flops / 1e9:.3f} GFLOP (global batch {cfg.batch_size}, "
              f"{cfg.rollout_steps}-step rollout, forward + backward; matmuls and convolutions only)")
        print(f"steps per epoch: {trainer.steps_per_epoch}, total steps: {trainer.total_steps}")
    return TrainResult(step=0, epoch=0, n_parameters=n_params, flops_per_step=flops)


def train(config: TrainConfig, resume: bool = False, dry_run: bool = False) -> TrainResult:
    """Train ``config`` (see the module docstring); works alone or under ``torchrun``."""
    world = setup_distributed(config.device)
    try:
        seed_everything(config.seed, world.device)
        resume_from = None if dry_run else broadcast_checked(lambda: _prepare_out(config, resume), world)
        trainer = Trainer(config, world, load_run_data(config))
        if dry_run:
            return dry_run_report(trainer)
        if resume_from is not None:
            trainer.restore(resume_from)
        return _run(trainer)
    finally:
        cleanup_distributed()


def broadcast_checked(fn: Callable[[], Any], world: DistributedContext) -> Any:
    """Run ``fn`` on every rank but fail on all ranks together when rank 0's input is bad."""
    try:
        value, error = fn(), None
    except InputError as exc:
        value, error = None, str(exc)
    errors = [e for e in all_gather_objects(error, world) if e is not None]
    if errors:
        raise InputError(errors[0])
    return value


def _run(trainer: Trainer) -> TrainResult:
    config, world = trainer.config, trainer.world
    result = TrainResult(step=trainer.step, epoch=trainer.epoch, n_parameters=sum(p.numel() for p in trainer.model.parameters()))
    metrics = bar = None
    if world.is_main:
        _write_config(config)
        metrics = MetricsWriter(Path(config.out), trainer.data.variables, trainer.step, config.tensorboard)
        bar = progress_bar(total=trainer.max_steps, desc="train", unit="step")
        bar.update(trainer.step)
    start, start_step = time.perf_counter(), trainer.step
    try:
        keep_going = trainer.epoch < config.epochs and trainer.step < trainer.max_steps
        while keep_going:
            keep_going = trainer.run_epoch(metrics, bar, result)
        if trainer.saved_step != trainer.step:
            result.checkpoint = trainer.save()
    finally:
        if metrics is not None:
            metrics.close()
            bar.close()
    elapsed = time.perf_counter() - start
    if world.is_main and trainer.step > start_step:
        log.info("%d steps in %.1f s (%.2f samples/s)", trainer.step - start_step, elapsed,
                 (trainer.step - start_step) * config.batch_size / elapsed)
    result.step, result.epoch, result.val_metrics = trainer.step, trainer.epoch, trainer.last_val
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m forecast.train --config FILE [--resume] [--dry-run] [key=value ...]``."""
    from forecast.logging_setup import configure_logging
    from pipelines.config import load_config

    parser = argparse.ArgumentParser(prog="python -m forecast.train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", "-c", default=None, help="YAML config file (configs/train.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue exactly from out/checkpoints/latest.pt")
    parser.add_argument("--dry-run", action="store_true", help="print parameter count and FLOPs per step, then exit")
    parser.add_argument("--quiet", "-q", action="store_true", help="warnings only, no progress bar")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. lr=3e-4 model.embed_dim=32")
    args = parser.parse_args(argv)
    configure_logging(-1 if args.quiet else 0)
    try:
        config = load_config(TrainConfig, args.config, args.overrides)
        result = train(config, resume=args.resume, dry_run=args.dry_run)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.checkpoint is not None and os.environ.get("RANK", "0") == "0":
        print(f"checkpoint: {result.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
