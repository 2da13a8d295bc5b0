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
    render = _renderer()
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(render, "RESULTS", results)
    assert "No results yet" in render.demo_timings() and "No results yet" in render.demo_skill()
    record = {"name": "demo", "command": "forecast demo", "commit": "0123456789abcdef", "dirty": False,
              "date": "2026-12-06T10:00:00Z", "machine": {"cpu": "Test CPU", "cores": 2},
              "figures": {"timings": {"prepare": 12.0, "total": 34.0}, "skill": {}}}
    (results / "demo.json").write_text(json.dumps(record))
    table = render.demo_timings()
    assert "| prepare | 12 |" in table and "| total | 34 |" in table


def _write_benchmark(results, name: str, tables: list[dict]) -> None:
    import json

    record = {"name": name, "command": f"{name}.py --quick", "commit": "0123456789abcdef", "dirty": False,
              "date": "2026-12-06T10:00:00Z",
              "machine": {"cpu": "Test CPU", "cores": 2, "torch_threads": 2, "torch": "x", "python": "3.11"},
              "figures": {"tables": tables}}
    (results / "benchmarks").mkdir(parents=True, exist_ok=True)
    (results / "benchmarks" / f"{name}.json").write_text(json.dumps(record))


def test_a_benchmark_table_is_rendered_from_its_results_file(tmp_path, monkeypatch):
    """``bench-NAME`` renders every table of docs/results/benchmarks/NAME.json: title, columns,
    numbers to 3 significant figures, the note, then the file and its provenance."""
    from forecast.results import table

    render = _renderer()
    monkeypatch.setattr(render, "RESULTS", tmp_path)
    _write_benchmark(tmp_path, "toy", [
        table("Speed", ["metric", "ours (ms)", "ratio"], [["rmse", 12.3456, 0.123456], ["a|b", 1234.5, 2]],
              "Best of 3 calls."),
        table("Flags", ["limiter", "used"], [["cap", False], ["n", 1.0e-5]]),
    ])
    text = "intro\n<!-- table:bench-toy -->\nstale\n<!-- /table -->\nafter\n"
    assert render.render_text(text) == (
        "intro\n<!-- table:bench-toy -->\n"
        "**Speed**\n\n| metric | ours (ms) | ratio |\n|---|---|---|\n| rmse | 12.3 | 0.123 |\n| a\\|b | 1230 | 2 |\n"
        "\nBest of 3 calls.\n\n"
        "**Flags**\n\n| limiter | used |\n|---|---|\n| cap | no |\n| n | 1.00e-05 |\n\n"
        "Source: `docs/results/benchmarks/toy.json` (commit 0123456, 2026-12-06, Test CPU (2 cores)).\n"
        "<!-- /table -->\nafter\n")
    assert "No results yet" in render.render_text("<!-- table:bench-missing -->\n<!-- /table -->\n")


def test_every_benchmark_has_a_section_and_its_table_in_the_benchmarks_page():
    """docs/benchmarks.md (checked against its rendering above, with the other documents) shows
    the tables of every benchmark that writes a results file through forecast.results."""
    render = _renderer()
    assert REPO / "docs" / "benchmarks.md" in render.documents()
    page = (REPO / "docs" / "benchmarks.md").read_text()
    for script in sorted((REPO / "benchmarks").glob("*.py")):
        if script.stem == "skill" or "write_results" not in script.read_text():
            continue   # skill.py: docs/skill.md
        assert f"<!-- table:bench-{script.stem} -->" in page, script.name
        assert f"python benchmarks/{script.name}" in page, script.name
