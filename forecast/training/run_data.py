"""What a training run reads: the store's grid, variables, statistics, static fields and
the time-split datasets, and the sampler that resumes mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset, DistributedSampler

from forecast.config import TrainConfig
from forecast.data import Splits, build_splits, load_state_array, mirror_parity, model_step, split_masks
from forecast.distributed import DistributedContext
from forecast.forcings import forcing_names, normalise_static
from forecast.models import model_class
from forecast.normalise import Normaliser
from pipelines.errors import InputError
from pipelines.grids import Grid
from pipelines.store import open_store

__all__ = ["RunData", "load_run_data", "ResumableSampler"]


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
    store = open_store(config.store, dask=False)   # read whole (or per sample), not computed
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
    staged = model_class(config.model).trained_in_stages   # each of its stages learns one model step
    splits = build_splits(states, store.times, grid, static, store.time_step, step,
                          1 if staged else config.rollout_steps, masks, with_path=staged)
    if config.equator_mirror:   # checked here, before a run writes anything
        splits.train.set_equator_mirror(mirror_parity(variables, config.equator_mirror), normaliser)
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
