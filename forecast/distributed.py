"""Process-group set-up for data-parallel training (DDP) under ``torchrun``.

``torchrun --nproc_per_node=N`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; without them training runs as one process. The
backend is NCCL when the processes use CUDA and gloo on CPU.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

from pipelines.errors import InputError

log = logging.getLogger("forecast.distributed")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False   # this context joined the process group (and leaves it in cleanup_distributed)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return default if value is None else int(value)
    except ValueError:
        raise InputError(f"environment variable {name}={value!r} is not an integer") from None


def select_device(preference: str, local_rank: int = 0) -> torch.device:
    """``"auto"``: CUDA when available (GPU ``local_rank``), else CPU."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but no CUDA GPU is available; use device=cpu or auto")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


def setup_distributed(device_preference: str = "auto") -> DistributedContext:
    """Read the torchrun environment and join the process group when ``WORLD_SIZE > 1``.

    Idempotent: an already initialised process group is reused.
    """
    rank, world_size = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = select_device(device_preference, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    owns = world_size > 1 and not dist.is_initialized()
    if owns:
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        log.info("rank %d/%d joined the %s process group on %s", rank, world_size, backend, device)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device, owns_group=owns)


def cleanup_distributed(ctx: DistributedContext) -> None:
    """Leave the process group if ``ctx`` joined it (a group the caller set up stays)."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (no-op in a single process)."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(obj: Any, ctx: DistributedContext) -> list[Any]:
    """Every rank's ``obj``, indexed by rank (``[obj]`` in a single process)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistributedContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def agree(ctx: DistributedContext, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on this process, then agree with the others: when any process failed,
    every process raises (its own error, or one naming the failed process), so that none
    waits forever for a partner that gave up. Returns ``fn``'s result."""
    try:
        result, error = fn(), None
    except Exception as exc:  # noqa: BLE001 - re-raised below, after the others know
        result, error = None, exc
    reports = all_gather_objects(None if error is None else (type(error).__name__, str(error),
                                                             isinstance(error, InputError)), ctx)
    if error is not None:
        raise error
    failed = [(rank, report) for rank, report in enumerate(reports) if report is not None]
    if failed:
        rank, (kind, message, bad_input) = failed[0]
        text = f"process {rank} failed: {kind}: {message}"
        raise InputError(text) if bad_input else RuntimeError(text)
    return result


def barrier(ctx: DistributedContext) -> None:
    if ctx.distributed:
        dist.barrier()
