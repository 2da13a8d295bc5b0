"""``forecast checkpoint convert OLD NEW --trust``: a format-1 checkpoint (a :func:`torch.save`
pickle) -> the current format (:mod:`forecast.checkpoint`).

This is the only place in the package that unpickles, and only when the caller says it
trusts the file: unpickling runs whatever code the file holds, and the ``.sha256`` sidecar
says nothing about who wrote it (docs/trust.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

from forecast.checkpoint import (Checkpoint, checked_payload, checksum_path, is_safetensors, save_checkpoint,
                                 verify_checksum)
from pipelines.errors import InputError
from pipelines.outputs import check_output

__all__ = ["convert_legacy"]

log = logging.getLogger(__name__)


def convert_legacy(old: str | Path, new: str | Path, trust: bool, overwrite: bool = False) -> Path:
    """Unpickle the format-1 checkpoint ``old`` and write it to ``new`` (with its sidecar).

    Parameters
    ----------
    old
        A format-1 checkpoint with its ``.sha256`` sidecar (integrity is checked first).
    new
        The converted checkpoint; never ``old`` itself.
    trust
        The caller trusts where ``old`` came from; without it nothing is read.
    overwrite
        Replace an existing ``new``.

    Raises
    ------
    InputError
        Without ``trust``, for a missing, corrupt or already converted ``old``, a ``new``
        that is ``old`` or exists (without ``overwrite``), or a payload that is no checkpoint.
    """
    old, new = Path(old), Path(new)
    if not trust:
        raise InputError(f"converting {old} unpickles it, which runs any code it holds; pass --trust only if you "
                         "trust where it came from")
    if not old.is_file():
        raise InputError(f"checkpoint {old} does not exist")
    new = check_output(new, {"OLD": old, "OLD's checksum": checksum_path(old)}, option="NEW", kind="file")
    if new.exists() and not overwrite:
        raise InputError(f"NEW {new} already exists; pass --overwrite to replace it")
    digest = verify_checksum(old)
    if is_safetensors(old):
        raise InputError(f"checkpoint {old} is already in the current format; nothing to convert")
    ckpt = _unpickle(old, digest)
    ckpt.path = None
    save_checkpoint(new, ckpt)
    log.info("converted %s (format 1, sha256 %s) to %s", old, digest[:16], new)
    return new


def _unpickle(old: Path, digest: str) -> Checkpoint:
    import torch

    try:
        payload = torch.load(old, map_location="cpu", weights_only=False)   # trusted by the caller
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(f"checkpoint {old} cannot be unpickled: {type(exc).__name__}: {first[:200]}") from None
    if not isinstance(payload, dict):
        raise InputError(f"checkpoint {old} holds a {type(payload).__name__}, not a checkpoint")
    if payload.get("format_version") != 1:
        raise InputError(f"checkpoint {old} has format {payload.get('format_version')!s:.20}; only format 1 "
                         "is converted")
    return checked_payload(payload, old, digest)
