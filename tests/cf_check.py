"""The IOOS compliance checker (cf:1.8) as a test helper."""

from __future__ import annotations

import json
from pathlib import Path


def cf_failures(path: Path, tmp: Path, levels: tuple[str, ...] = ("high_priorities", "medium_priorities")) -> list[str]:
    """The compliance checker's messages on ``path`` at ``levels`` (default high and medium
    priority; add ``"low_priorities"`` for its recommendations, e.g. the dim order); empty: passes."""
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report = tmp / f"{path.stem}.cf.json"
    ComplianceChecker.run_checker(str(path), ["cf:1.8"], 0, "normal", output_filename=str(report), output_format="json")
    results = json.loads(report.read_text())["cf:1.8"]
    return [msg for level in levels for check in results[level]
            for msg in check.get("msgs", [])]
