"""Checkpoints: everything a rollout or a resumed run needs, in one verified file.

A checkpoint ``step_0000100.pt`` is a :func:`torch.save` of a plain dict (see
:meth:`Checkpoint.to_payload`) holding the model and train configs, the grid, the
variables, the normalisation statistics, the normalised static fields, the model time
step, the model/optimiser/scheduler states, every rank's RNG states, the position in
the data (epoch and batch within it) and the package version. Beside it,
``step_0000100.pt.sha256`` holds its SHA-256 in ``sha256sum`` format (``sha256sum -c``
checks it). Both are written atomically (temporary sibling, then rename).

:func:`load_checkpoint` verifies the checksum *before* unpickling, so a truncated or
corrupt file, or one without its checksum, is refused with a one-line
:class:`~pipelines.errors.InputError` (naming an intact ``step_*.pt`` beside it, if any).

Trust model: a checkpoint is a pickle (``weights_only=False`` is needed for the NumPy
arrays and RNG states), and unpickling runs code. The checksum proves integrity, not
origin: whoever can write a checkpoint can write its sidecar. Load only checkpoints
written by your own runs or by people you trust, as with any PyTorch pickle.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forecast import __version__
from forecast.config import ModelConfig
from pipelines.atomic import atomic_path
from pipelines.config import validate_config
from pipelines.errors import InputError
from pipelines.grids import Grid

FORMAT_VERSION = 1
_REQUIRED_KEYS = ("format_version", "model_config", "train_config", "grid", "variables", "static_names", "static",
                  "mean", "std", "time_step_seconds", "step", "epoch", "batch_in_epoch", "model_state",
                  "optimizer_state", "scheduler_state", "rng_state", "version")


@dataclass
class Checkpoint:
    """The content of a checkpoint file.

    ``mean``/``std`` are ``(C,)`` in physical units; ``static`` is ``(S, nlat, nlon)``
    normalised (or None); ``time_step_seconds`` is the *model* step; ``batch_in_epoch``
    counts the optimiser steps already taken in ``epoch``; ``rng_state`` holds one dict
    of RNG states per rank; ``power_spectrum`` is the ``(C, L)`` mean power per spherical-harmonic
    degree of the normalised training states (:func:`forecast.models.spectral_cap.reference_power`;
    None in checkpoints written before it existed); ``sha256`` and ``path`` are filled in by
    :func:`load_checkpoint`.
    """

    model_config: ModelConfig
    train_config: dict
    grid: Grid
    variables: list[str]
    static_names: list[str]
    static: np.ndarray | None
    mean: np.ndarray
    std: np.ndarray
    time_step_seconds: float
    step: int
    epoch: int
    model_state: dict
    optimizer_state: dict | None = None
    scheduler_state: dict | None = None
    rng_state: list[dict] = field(default_factory=list)
    batch_in_epoch: int = 0
    power_spectrum: np.ndarray | None = None
    version: str = __version__
    sha256: str = ""
    path: Path | None = None

    def to_payload(self) -> dict[str, Any]:
        """A dict of plain Python, NumPy and torch objects for :func:`torch.save`."""
        payload = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("sha256", "path")}
        payload.update(format_version=FORMAT_VERSION, model_config=self.model_config.model_dump(), grid=str(self.grid))
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: Path, sha256: str) -> "Checkpoint":
        fields = {k: v for k, v in payload.items() if k != "format_version"}
        fields["model_config"] = validate_config(ModelConfig, payload["model_config"], source=f"checkpoint {path}")
        fields["grid"] = Grid.parse(payload["grid"])
        return cls(**fields, sha256=sha256, path=path)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksum_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def save_checkpoint(path: str | Path, ckpt: Checkpoint) -> Path:
    """Write ``ckpt`` to ``path`` and its checksum to ``path.sha256``, both atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(ckpt.to_payload(), tmp)
        digest = file_sha256(tmp)
        with atomic_path(checksum_path(path)) as tmp_sum:
            tmp_sum.write_text(f"{digest}  {path.name}\n")
    return path


def _read_checksum(path: Path) -> str:
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        raise InputError(f"checkpoint {path} has no checksum file {sidecar.name}; copy both files together")
    text = sidecar.read_text().split()
    if not text or len(text[0]) != 64:
        raise InputError(f"checksum file {sidecar} is malformed; expected '<sha256>  {path.name}'")
    return text[0].lower()


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and verify a checkpoint.

    Raises
    ------
    InputError
        If the file is missing, has no checksum, does not match its checksum
        (truncated or corrupt), cannot be unpickled or lacks required keys.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))
        raise InputError(f"checkpoint {path} is a directory; pass a checkpoint file in it"
                         + (f", e.g. {path / found[-1]} (it holds {', '.join(found)})" if found else " (it holds no *.pt)"))
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    expected = _read_checksum(path)
    actual = file_sha256(path)
    if actual != expected:
        raise InputError(f"checkpoint {path} is truncated or corrupt: its sha256 {actual[:12]}... does not match "
                         f"{expected[:12]}... in {checksum_path(path).name}{_intact_hint(path)}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise InputError(f"checkpoint {path} is truncated or corrupt: {type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    missing = [k for k in _REQUIRED_KEYS if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise InputError(f"checkpoint {path} is truncated or corrupt: missing keys {', '.join(missing)}")
    if payload["format_version"] > FORMAT_VERSION:
        raise InputError(f"checkpoint {path} has format {payload['format_version']}, newer than this "
                         f"package understands ({FORMAT_VERSION}); upgrade sphere-forecast")
    return Checkpoint.from_payload(payload, path, actual)


def _intact_hint(path: Path) -> str:
    """``"; step_0000120.pt beside it is intact"``: the newest sibling checkpoint that matches its checksum."""
    for sibling in sorted(path.parent.glob("step_*.pt"), reverse=True):
        try:
            if sibling != path and file_sha256(sibling) == _read_checksum(sibling):
                return f"; {sibling.name} beside it is intact"
        except InputError:
            continue
    return ""


def check_compatible(ckpt: Checkpoint, grid: Grid, variables: list[str]) -> None:
    """Refuse a checkpoint trained on another grid or another variable list (order matters)."""
    where = f"checkpoint {ckpt.path}" if ckpt.path else "the checkpoint"
    if str(ckpt.grid) != str(grid):
        raise InputError(f"{where} was trained on grid {ckpt.grid}, but the data are on grid {grid}; "
                         "regrid the data or use a matching checkpoint")
    if list(ckpt.variables) != list(variables):
        raise InputError(f"{where} was trained on variables [{', '.join(ckpt.variables)}], but the data have "
                         f"[{', '.join(variables)}]; use the same variables in the same order")


def load_model(path: str | Path, device: str | torch.device = "cpu",
               model_overrides: dict[str, Any] | None = None) -> tuple[torch.nn.Module, Checkpoint]:
    """Build the model of a checkpoint, load its weights and put it in eval mode on ``device``;
    ``model_overrides`` replace keys of its model config that carry no weights (an inference
    dropout rate, a noise amplitude)."""
    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt, device, model_overrides), ckpt


def model_from_checkpoint(ckpt: Checkpoint, device: str | torch.device = "cpu",
                          model_overrides: dict[str, Any] | None = None) -> torch.nn.Module:
    """:func:`load_model` for a checkpoint already loaded (and checked) by :func:`load_checkpoint`."""
    from forecast.forcings import forcing_names
    from forecast.models import build_model

    config = ckpt.model_config.model_copy(update=model_overrides) if model_overrides else ckpt.model_config
    model = build_model(config, ckpt.grid, len(ckpt.variables), len(forcing_names(ckpt.static_names)))
    model.load_state_dict(ckpt.model_state)
    return model.to(device).eval()
