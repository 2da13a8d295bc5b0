r"""Training: one process, or data-parallel (DDP) under ``torchrun``.

``train(config)`` reads the training store, builds the model and trains it with AdamW
(linear warm-up over ``warmup_steps``, then cosine decay to 0 at the end of ``epochs``),
gradient clipping, and bf16 autocast on GPU. The loss is the area-weighted MSE of
:mod:`forecast.losses`, averaged over an autoregressive rollout of ``n`` steps;
``n`` follows a curriculum (:func:`rollout_steps_for_epoch`). After each epoch the
one-step validation RMSE per variable is computed in physical units.

Spherical DYffusion (``model.architecture: dyffusion``) trains in two stages in the same run:
the interpolator for ``epochs``, then the forecaster for ``forecaster_epochs`` against the
frozen interpolator (:mod:`forecast.training.dyffusion`); each stage has its own optimiser
and learning-rate schedule, and exact resume holds across the change.

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
import logging
import os
import sys
import time
from pathlib import Path

import yaml

from forecast.checkpoint import Checkpoint, load_checkpoint
from forecast.config import TrainConfig
from forecast.models import count_parameters
from forecast.distributed import agree, cleanup_distributed, setup_distributed
from forecast.training.metrics import MetricsWriter
from forecast.training.run_data import RunData, load_run_data
from forecast.training.schedule import deterministic_kernels, lr_factor, rollout_steps_for_epoch, seed_everything
from forecast.training.trainer import Trainer, TrainResult
from pipelines.atomic import atomic_path
from pipelines.config import config_differences
from pipelines.errors import InputError
from pipelines.outputs import check_output
from pipelines.progress import progress_bar

__all__ = ["train", "TrainResult", "RunData", "load_run_data", "lr_factor", "rollout_steps_for_epoch", "main"]

log = logging.getLogger("forecast.train")


# -- entry points --------------------------------------------------------------------------------
def _prepare_out(config: TrainConfig, resume: bool) -> Checkpoint | None:
    """The checkpoint to resume from (or None); refuse to overwrite another run's checkpoints or
    an output that is, contains or lies inside the store (or under a file)."""
    check_output(config.out, {"--store": config.store}, "--out", "dir")
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
    from forecast.models import count_parameters, estimate_flops, model_class

    cfg, data = trainer.config, trainer.data
    n_params = count_parameters(trainer.model)
    per_sample = estimate_flops(trainer.model, data.grid, len(data.variables), data.n_forcing, backward=True,
                                constraints=trainer.constraints)
    flops = per_sample * cfg.rollout_steps * cfg.batch_size * cfg.ensemble_members
    staged = model_class(cfg.model).trained_in_stages   # DYffusion
    if staged:
        # a forward is the sampling loop, 3h - 2 network calls; a training step of the interpolator
        # stage is one call forward + backward, of the forecaster stage that plus one forward
        flops = per_sample // (3 * data.step - 2) * cfg.batch_size
    if trainer.world.is_main:
        print(f"model: {cfg.model.architecture} on {data.grid}, {len(data.variables)} state + {data.n_forcing} forcing channels")
        print(f"parameters: {n_params:,}")
        print(f"estimated FLOPs per step: {flops / 1e9:.3f} GFLOP (global batch {cfg.batch_size} x "
              f"{cfg.ensemble_members} member(s), "
              f"{1 if staged else cfg.rollout_steps}-step rollout, forward + backward; "
              "matmuls and convolutions only)")
        if staged:
            print(f"(DYffusion: that is the interpolator stage; the forecaster stage's steps cost about "
                  f"{flops * 4 / 3 / 1e9:.3f} GFLOP; inference takes {3 * data.step - 2} network calls per model step)")
        print(f"steps per epoch: {trainer.steps_per_epoch}, total steps: {trainer.total_steps}")
    return TrainResult(step=0, epoch=0, n_parameters=n_params, flops_per_step=flops)


def train(config: TrainConfig, resume: bool = False, dry_run: bool = False) -> TrainResult:
    """Train ``config`` (see the module docstring); works alone or under ``torchrun``."""
    world = setup_distributed(config.device)
    try:
        with deterministic_kernels(world.device):
            seed_everything(config.seed)
            resume_from = None if dry_run else agree(world, lambda: _prepare_out(config, resume))
            trainer = Trainer(config, world, load_run_data(config))
            if dry_run:
                return dry_run_report(trainer)
            if resume_from is not None:
                trainer.restore(resume_from)
            return _run(trainer)
    finally:
        cleanup_distributed(world)


def _run(trainer: Trainer) -> TrainResult:
    config, world = trainer.config, trainer.world
    result = TrainResult(step=trainer.step, epoch=trainer.epoch, n_parameters=count_parameters(trainer.model))
    metrics = bar = None
    if world.is_main:
        _write_config(config)
        metrics = MetricsWriter(Path(config.out), trainer.data.variables, trainer.step, config.tensorboard)
        bar = progress_bar(total=trainer.max_steps, desc="train", unit="step")
        bar.update(trainer.step)
    start, start_step = time.perf_counter(), trainer.step
    try:
        keep_going = trainer.epoch < trainer.total_epochs and trainer.step < trainer.max_steps
        while keep_going:
            keep_going = trainer.run_epoch(metrics, bar, result)
        if trainer.saved_step != trainer.step:
            result.checkpoint = trainer.save()
    finally:
        if metrics is not None:
            metrics.close()
        if bar is not None:
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
