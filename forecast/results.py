"""Results files: what a benchmark or the demo measured, with where and how it was measured.

Every figure in the README or ``docs/`` is rendered from one of these files
(``python -m forecast.docs``), never typed by hand. A results file is JSON::

    {"name": ..., "command": "...", "commit": "<git sha or 'unknown'>", "dirty": bool,
     "date": "2026-12-06T10:00:00Z",
     "machine": {"cpu": "...", "cores": 2, "torch_threads": 2, "torch": "2.13.0+cpu", "python": "3.11.7"},
     "figures": {...}}

``figures`` is free-form (numbers, lists, nested dicts): each writer documents its own. A
benchmark (``benchmarks/NAME.py``) writes ``docs/results/benchmarks/NAME.json`` by default and
puts what the docs show under ``figures["tables"]``, a list of :func:`table`; ``docs/render.py``
renders all of them where ``docs/`` has a ``<!-- table:bench-NAME -->`` block.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines.atomic import atomic_path

__all__ = ["machine", "git_commit", "write_results", "read_results", "table", "add_results_option"]

REPO = Path(__file__).resolve().parents[1]
BENCHMARK_RESULTS = REPO / "docs" / "results" / "benchmarks"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """CPU model, cores, torch's intra-op threads, versions."""
    import torch

    return {"cpu": _cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}


def git_commit() -> tuple[str, bool]:
    """``(sha, dirty)`` of the checkout this package runs from (``("unknown", False)`` outside git)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def write_results(path: str | Path, name: str, figures: dict[str, Any], command: str | None = None) -> Path:
    """Write a results file atomically and return its path."""
    commit, dirty = git_commit()
    record = {"name": name, "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              "commit": commit, "dirty": dirty,
              "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
              "machine": machine(), "figures": figures}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return path


def read_results(path: str | Path) -> dict[str, Any]:
    """A results file written by :func:`write_results`."""
    return json.loads(Path(path).read_text())


def table(title: str, columns: list[str], rows: list[list[Any]], note: str | None = None) -> dict[str, Any]:
    """One table of a benchmark's ``figures["tables"]``: cells are numbers or strings, one per column;
    ``note`` states the method in a sentence (e.g. "median of 5 repeats")."""
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"table {title!r}: row {row} has {len(row)} cells for {len(columns)} columns")
    out: dict[str, Any] = {"title": title, "columns": list(columns), "rows": [list(r) for r in rows]}
    if note:
        out["note"] = note
    return out


def add_results_option(parser: argparse.ArgumentParser, name: str) -> None:
    """``--results PATH``: where ``benchmarks/NAME.py`` writes its results file
    (default ``docs/results/benchmarks/NAME.json``, the file its docs table is rendered from)."""
    parser.add_argument("--results", type=Path, default=BENCHMARK_RESULTS / f"{name}.json",
                        help=f"results file (default: docs/results/benchmarks/{name}.json)")
