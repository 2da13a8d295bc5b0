"""Every generated table in README.md and docs/ equals its rendering from the results files."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _renderer():
    spec = importlib.util.spec_from_file_location("render", REPO / "docs" / "render.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_tables_equal_their_rendering():
    render = _renderer()
    for path in render.documents():
        text = path.read_text()
        assert render.render_text(text) == text, f"{path.name}: run `python docs/render.py`"


def test_the_readme_is_a_guide_and_names_no_figure_by_hand():
    """README.md stays short; its numbers sit in generated tables, which come from results files."""
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    prose = re.sub(r"<!-- table:[\w-]+ -->\n.*?<!-- /table -->", "", text, flags=re.S)
    prose = re.sub(r"```.*?```", "", prose, flags=re.S)          # commands and their options
    measured = re.findall(r"\b\d+\.\d+\s*(?:x|s|%|ms|GFLOP)\b", prose)
    assert not measured, f"hand-typed measurements in README.md: {measured[:5]}"


def test_a_table_reflects_its_results_file(tmp_path, monkeypatch):
    """Rendering is a function of the results files: change a file, the table changes."""
    import json
    import shutil

    render = _renderer()
    results = tmp_path / "results"
    shutil.copytree(REPO / "docs" / "results", results)
    record = json.loads((results / "demo.json").read_text())
    record["figures"]["timings"] = {"prepare": 12.0, "total": 34.0}
    (results / "demo.json").write_text(json.dumps(record))
    monkeypatch.setattr(render, "RESULTS", results)
    table = render.demo_timings()
    assert "| prepare | 12 |" in table and "| total | 34 |" in table
