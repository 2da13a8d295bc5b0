"""Checkpoints: everything a rollout or a resumed run needs, in one verified file.

A checkpoint ``step_0000100.pt`` is a `safetensors` file written by
:func:`forecast.tensorfile.write_tree` (the ``.pt`` name is kept for continuity; the
content is no pickle): the model, optimiser and scheduler tensors, the normalisation
statistics, the normalised static fields and the RNG states as tensors; the model and
train configs, the grid, the variables, the model time step, the step/epoch/batch
counters, the optimiser's param groups, the package version and the format version as
JSON in the header (see :meth:`Checkpoint.to_payload`). Beside it,
``step_0000100.pt.sha256`` holds its SHA-256 in ``sha256sum`` format (``sha256sum -c``
checks it). Both are written atomically (temporary sibling, then rename).

:func:`load_checkpoint` verifies the checksum first, so a truncated or corrupt file, or
one without its checksum, is refused with a one-line :class:`~pipelines.errors.InputError`
(naming an intact ``step_*.pt`` beside it, if any); then it reads the file without
unpickling anything.

Trust model (docs/trust.md): loading a checkpoint runs no code from it, whoever wrote it.
The checksum proves integrity (the file is the one its writer wrote), not origin:
whoever can write a checkpoint can write its sidecar. Checkpoints of format 1 (a
:func:`torch.save` pickle, written before this format) are refused with the one command
that converts them, ``forecast checkpoint convert OLD NEW --trust``
(:mod:`forecast.checkpoint_legacy`), the only place that unpickles.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from forecast import __version__
from forecast.config import ModelConfig
from forecast.tensorfile import TreeFormatError, is_safetensors, read_tree, write_tree
from pipelines.atomic import atomic_path
from pipelines.config import validate_config
from pipelines.errors import InputError
from pipelines.grids import Grid

if TYPE_CHECKING:   # forecast.models imports this module's users; the classes are needed for types only
    from forecast.models.base import InferenceOptions, PrognosticModel

FORMAT_VERSION = 2
KIND = "sphere-forecast checkpoint"
_REQUIRED_KEYS = ("format_version", "model_config", "train_config", "grid", "variables", "static_names", "static",
                  "mean", "std", "time_step_seconds", "step", "epoch", "batch_in_epoch", "model_state",
                  "optimizer_state", "scheduler_state", "rng_state", "version")
_TYPES: dict[str, type | tuple[type, ...]] = {
    "model_config": dict, "train_config": dict, "grid": str, "variables": list, "static_names": list,
    "mean": np.ndarray, "std": np.ndarray, "time_step_seconds": (int, float), "step": int, "epoch": int,
    "batch_in_epoch": int, "model_state": dict, "rng_state": list}


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
        """A dict of plain Python, NumPy and torch objects for :func:`forecast.tensorfile.write_tree`."""
        payload = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("sha256", "path")}
        payload.update(format_version=FORMAT_VERSION, model_config=self.model_config.model_dump(), grid=str(self.grid))
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any], path: Path, sha256: str) -> "Checkpoint":
        """The checkpoint of a payload whose required keys are present (unknown keys are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"sha256", "path"}
        fields = {k: v for k, v in payload.items() if k in known}
        fields["model_config"] = validate_config(ModelConfig, _without_inference_keys(payload["model_config"], path),
                                                 source=f"checkpoint {path}")
        try:
            fields["grid"] = Grid.parse(str(payload["grid"]))
        except ValueError as exc:
            raise InputError(f"checkpoint {path} is truncated or corrupt: its grid: {exc}") from None
        return cls(**fields, sha256=sha256, path=path)


#: keys of the model config, with their training values, that checkpoints carried while the
#: inference options (forecast.models.InferenceOptions) were part of it
_LEGACY_INFERENCE_KEYS = {"member_dropout": 0.0, "noise_amplitude": 1.0}


def _without_inference_keys(model_config: dict[str, Any], path: Path) -> dict[str, Any]:
    """``model_config`` without the legacy inference keys (refusing one set to another value than in training)."""
    for key, trained in _LEGACY_INFERENCE_KEYS.items():
        if key in model_config and model_config[key] != trained:
            raise InputError(f"checkpoint {path} sets model.{key}={model_config[key]}, an inference option now: "
                             f"set rollout.{key} instead")
    return {k: v for k, v in model_config.items() if k not in _LEGACY_INFERENCE_KEYS}


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
        write_tree(tmp, ckpt.to_payload(), KIND)
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
    """Read and verify a checkpoint; nothing in the file is executed.

    Raises
    ------
    InputError
        If the file is missing, has no checksum, does not match its checksum
        (truncated or corrupt), is a format-1 pickle (with the command that converts
        it), is malformed or lacks required keys.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))
        raise InputError(f"checkpoint {path} is a directory; pass a checkpoint file in it"
                         + (f", e.g. {path / found[-1]} (it holds {', '.join(found)})" if found else " (it holds no *.pt)"))
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    actual = verify_checksum(path)
    if not is_safetensors(path):
        raise InputError(refuse_legacy_message(path))
    try:
        payload = read_tree(path, KIND)
    except TreeFormatError as exc:
        raise InputError(f"checkpoint {path} is truncated or corrupt: {exc}") from None
    return checked_payload(payload, path, actual)


def verify_checksum(path: Path) -> str:
    """The SHA-256 of ``path``, refused unless it matches its ``.sha256`` sidecar."""
    expected = _read_checksum(path)
    actual = file_sha256(path)
    if actual != expected:
        raise InputError(f"checkpoint {path} is truncated or corrupt: its sha256 {actual[:12]}... does not match "
                         f"{expected[:12]}... in {checksum_path(path).name}{_intact_hint(path)}")
    return actual


def refuse_legacy_message(path: Path) -> str:
    """The one line that refuses a file that is not in the current format."""
    with open(path, "rb") as handle:
        head = handle.read(4)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":   # a torch.save zip or a bare pickle
        return (f"checkpoint {path} is a pickle (checkpoint format 1), which is not loaded because unpickling runs "
                f"any code it holds; if you trust where it came from, convert it with "
                f"`forecast checkpoint convert {path} NEW.pt --trust`")
    return f"checkpoint {path} is truncated or corrupt: it is not a safetensors file"


def checked_payload(payload: dict[str, Any], path: Path, sha256: str) -> Checkpoint:
    """The :class:`Checkpoint` of a payload, refused when keys are missing or its format is unknown."""
    missing = [k for k in _REQUIRED_KEYS if k not in payload]
    if missing:
        raise InputError(f"checkpoint {path} is truncated or corrupt: missing keys {', '.join(missing)}")
    wrong = [k for k, kind in _TYPES.items() if not isinstance(payload[k], kind) or isinstance(payload[k], bool)]
    if wrong:
        raise InputError(f"checkpoint {path} is truncated or corrupt: keys {', '.join(wrong)} have the wrong type")
    if not isinstance(payload["format_version"], int) or payload["format_version"] > FORMAT_VERSION:
        raise InputError(f"checkpoint {path} has format {payload['format_version']!s:.20}, newer than this "
                         f"package understands ({FORMAT_VERSION}); upgrade sphere-forecast")
    return Checkpoint.from_payload(payload, path, sha256)


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
               options: InferenceOptions | None = None) -> tuple[PrognosticModel, Checkpoint]:
    """Build the model of a checkpoint with the inference ``options`` (None: as trained), load
    its weights and put it in eval mode on ``device``."""
    ckpt = load_checkpoint(path)
    return model_from_checkpoint(ckpt, device, options), ckpt


def model_from_checkpoint(ckpt: Checkpoint, device: str | torch.device = "cpu",
                          options: InferenceOptions | None = None) -> PrognosticModel:
    """:func:`load_model` for a checkpoint already loaded (and checked) by :func:`load_checkpoint`."""
    from forecast.forcings import forcing_names
    from forecast.models import InferenceOptions, build_model

    model = build_model(ckpt.model_config, ckpt.grid, len(ckpt.variables), len(forcing_names(ckpt.static_names)),
                        options or InferenceOptions())
    load_weights(model, ckpt)
    return model.to(device).eval()


def load_weights(model: torch.nn.Module, ckpt: Checkpoint) -> None:
    """``model.load_state_dict(ckpt.model_state)``, refusing weights that do not fit the model its config builds."""
    try:
        model.load_state_dict(ckpt.model_state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        detail = " ".join(str(exc).split())
        raise InputError(f"checkpoint {ckpt.path}: its weights do not fit the model its config describes "
                         f"({detail[:300]})") from None
