"""The training metrics: ``metrics.csv`` (one row per step) and TensorBoard scalars."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from pipelines.atomic import atomic_path

__all__ = ["MetricsWriter"]

log = logging.getLogger("forecast.train")


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
