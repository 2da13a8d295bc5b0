"""Training schedules and reproducibility: the multi-step curriculum, the learning rate,
seeding and every RNG state a checkpoint saves.

:func:`deterministic_kernels` scopes PyTorch's deterministic-algorithms switch to a run
(it is process-wide state), restoring what the caller had.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["rollout_steps_for_epoch", "lr_factor", "seed_everything", "deterministic_kernels", "capture_rng_state",
           "restore_rng_state"]


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


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (the checkpoint saves and restores these states)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic_kernels(device: torch.device) -> Iterator[None]:
    """Deterministic kernels on CPU for the ``with`` block (bit-identical resume); the previous
    setting of this process-wide switch is restored afterwards."""
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


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
