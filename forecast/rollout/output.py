"""The output of a rollout: checked before any work, locked, hashed, refused when made with
other parameters, created or resumed (the file layout, the streaming writer and the
finalising are :mod:`forecast.rollout.io`'s)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from forecast.config import RolloutConfig
from forecast.rollout.io import (ForecastLayout, ForecastSink, completed_leads, is_complete, open_forecast,
                                 partial_path, remove_finalise_leftovers, remove_stale_temporaries, saved_config)
from pipelines.config import config_differences
from pipelines.errors import InputError
from pipelines.locks import hold_lock, lock_path
from pipelines.outputs import check_output

__all__ = ["check_output_path", "claim_output", "config_hash", "refuse_other_parameters", "is_done",
           "create_or_resume"]

log = logging.getLogger(__name__)


def check_output_path(out: str | Path, config: RolloutConfig | None = None) -> Path:
    """Refuse an output that cannot be a forecast before any work: suffix, kind, parent, a
    dangling link, or (given ``config``) one of the rollout's inputs; returns it with a link
    at ``out`` resolved."""
    from forecast.checkpoint import checksum_path

    out = Path(out)
    if out.suffix not in (".zarr", ".nc"):
        raise InputError(f"output {out} must end in .zarr or .nc")
    inputs: dict[str, str | Path | list[str] | list[Path]] = {} if config is None else {
                                        "--checkpoint": list(config.checkpoints),
                                        "--checkpoint's checksum": [checksum_path(c) for c in config.checkpoints],
                                        "--initial": config.initial}
    return check_output(out, inputs, "--out", "dir" if out.suffix == ".zarr" else "file")


def claim_output(out: Path, config: RolloutConfig, stack: contextlib.ExitStack) -> None:
    """Lock the output (until ``stack`` closes), remove a killed run's temporaries, refuse a broken output."""
    stack.enter_context(hold_lock(lock_path(out), config.lock_timeout_s, f"another `forecast rollout` is writing {out}"))
    removed = remove_stale_temporaries(out) + (0 if config.overwrite else remove_finalise_leftovers(out))
    if removed:
        log.info("removed %d temporary file(s) left by an earlier, killed run of %s", removed, out)
    if out.exists() and not config.overwrite and not is_complete(out):
        raise InputError(f"{out} exists but is not a complete forecast; pass --overwrite to replace it")


def config_hash(resolved: dict[str, Any]) -> str:
    """16 hex digits identifying a resolved rollout configuration."""
    return hashlib.sha256(json.dumps(resolved, sort_keys=True, default=str).encode()).hexdigest()[:16]


def is_done(out: Path, overwrite: bool, hashed: str, resolved: dict[str, Any]) -> bool:
    """Whether ``out`` exists, complete and made with the same parameters (refuse other parameters)."""
    if overwrite:
        return False
    refuse_other_parameters(out, hashed, resolved)
    return out.exists()


def refuse_other_parameters(out: Path, hashed: str, resolved: dict[str, Any]) -> None:
    """Refuse to skip or resume an output (complete or partial) made with other parameters than
    ``resolved`` (whose :func:`config_hash` is ``hashed``).

    Raises
    ------
    InputError
        Naming every differing key, e.g. ``members: 2 -> 3; lead: "12h" -> "18h"``.
    """
    for path, saved in ((out, _saved_resolved(out)), (partial_path(out), saved_config(partial_path(out)))):
        if saved is None or saved.get("config_hash") == hashed:
            continue
        what = "a complete forecast" if path == out else "an interrupted rollout"
        differences = config_differences(saved.get("resolved") or {}, resolved) or ["(older output, not recorded)"]
        raise InputError(f"{path} holds {what} made with other parameters ({'; '.join(differences)}); "
                         "pass --overwrite to replace it")


def _saved_resolved(out: Path) -> dict[str, Any] | None:
    if not out.exists():
        return None
    attrs = open_forecast(out).attrs
    provenance = json.loads(attrs.get("provenance", "{}"))
    return {"config_hash": attrs.get("config_hash"), "resolved": provenance.get("resolved")}


def create_or_resume(writer: ForecastSink, layout: ForecastLayout) -> None:
    """Keep the partial output made with the same configuration, or create it with ``layout``."""
    if writer.matches():
        log.info("resuming %s: complete lead times per init time %s", writer.partial, completed_leads(writer.partial))
    else:
        writer.create(layout)
