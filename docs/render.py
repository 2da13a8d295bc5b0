"""Render every generated table of README.md and docs/*.md from the results files in docs/results/.

    python docs/render.py           # rewrite the tables in place
    python docs/render.py --check   # exit 1 if a committed table differs from its rendering
    python docs/render.py docs/benchmarks.md   # only these documents

A generated table sits between ``<!-- table:NAME -->`` and ``<!-- /table -->``; NAME is a
function of :data:`TABLES`, which reads results files (written by the demo and the
benchmarks through :mod:`forecast.results`) and returns markdown, or ``bench-BENCHMARK``:
every table of ``docs/results/benchmarks/BENCHMARK.json`` (:func:`benchmark_tables`). No
number in the docs is typed by hand: a figure comes from a results file, with the commit and
machine it states.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
RESULTS = DOCS / "results"
MARK = re.compile(r"(<!-- table:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)
VARIABLES = ("gh", "u", "v", "vo")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _provenance(*records: dict[str, Any]) -> str:
    """``commit abc1234, 2026-12-06, Intel ... (2 cores)`` of the records (deduplicated)."""
    seen = []
    for r in records:
        m = r["machine"]
        line = f"commit {r['commit'][:7]}{'+' if r.get('dirty') else ''}, {r['date'][:10]}, {m['cpu']} ({m['cores']} cores)"
        if line not in seen:
            seen.append(line)
    return "; ".join(seen)


def _triple(t: list[float] | None) -> str:
    return f"{t[0]:.2f} [{t[1]:.2f}, {t[2]:.2f}]" if t else "-"


def _power(p: dict[str, float]) -> str:
    return f"{p['min']:.2f}-{p['max']:.3g}" if p else "-"


def _by_lead(skill: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(variable, lead, row) of one model's skill summary, variables in order, leads ascending."""
    for variable in VARIABLES:
        per_lead = skill.get(variable, {})
        for lead in sorted(per_lead, key=float):
            yield variable, lead, per_lead[lead]


def _skill_rows(model: str, skill: dict[str, Any]) -> list[str]:
    return [f"| {model} | {variable} | {lead} h | {_triple(row.get('crps_vs_perfect'))} | "
            f"{_triple(row.get('ens_rmse_vs_perfect'))} | {_triple(row['spread_skill'])} | "
            f"{_power(row.get('power_ratio', {}))} |" for variable, lead, row in _by_lead(skill)]


DEMO_MISSING = ("No results yet: `docs/results/demo.json` does not exist (`forecast demo`, then copy "
                "`demo/results.json` there: `bash benchmarks/run_all.sh --demo`).")


def _demo_record() -> dict[str, Any] | None:
    path = RESULTS / "demo.json"
    return _load(path) if path.exists() else None


def demo_skill() -> str:
    """The demo's skill on the test window (``docs/results/demo.json``, written by ``forecast demo``)."""
    record = _demo_record()
    if record is None:
        return DEMO_MISSING
    head = ["| model | variable | lead | CRPS / perfect model | ens-mean RMSE / perfect model | spread/skill "
            "| members' power / truth's (min-max over l >= 1) |", "|---|---|---|---|---|---|---|"]
    rows = [r for model, skill in record["figures"]["skill"].items()
            for r in _skill_rows(model.replace("_", " "), skill)]
    return "\n".join(head + rows + ["", f"Source: `docs/results/demo.json` ({_provenance(record)}); "
                                        "values [90 % bootstrap interval over the test window's init times]."])


def demo_timings() -> str:
    record = _demo_record()
    if record is None:
        return DEMO_MISSING
    timings = record["figures"]["timings"]
    rows = [f"| {stage} | {seconds:.0f} |" for stage, seconds in timings.items()]
    return "\n".join(["| stage | seconds |", "|---|---|", *rows, "",
                      f"Source: `docs/results/demo.json` ({_provenance(record)})."])


def _range(values: list[float]) -> str:
    return f"{_cell(float(min(values)))}-{_cell(float(max(values)))}"


def _setting_row(record: dict[str, Any], model: str) -> str:
    f = record["figures"]
    skill = f["skill"][model]
    cells = [f["setting"], " ".join(f"`{o}`" for o in f["overrides"]) or "(the demo's)"]
    for variable in VARIABLES:
        per_lead = skill.get(variable, {})
        crps = [per_lead[k]["crps_vs_perfect"][0] for k in ("24", "72", "120") if k in per_lead]
        ss = [row["spread_skill"][0] for row in per_lead.values()]
        power = [x for row in per_lead.values() for x in row["power_ratio"].values()]
        cells.append(f"{' / '.join(f'{c:.2f}' for c in crps)}; {_range(ss)}; {_range(power) if power else '-'}")
    return "| " + " | ".join(cells) + " |"


def _settings_table(window: str, pattern: str) -> str:
    records = [_load(p) for p in sorted((RESULTS / "skill").glob(f"{window}_{pattern}.json"))]
    head = ["| setting | overrides | " + " | ".join(VARIABLES) + " |", "|---|---|" + "---|" * len(VARIABLES)]
    rows = [_setting_row(r, model) for r in records for model in r["figures"]["skill"] if model != "perfect_model"]
    legend = ("Each variable: CRPS / perfect model's at 24 / 72 / 120 h; spread/skill, smallest-largest over "
              "6, 24, 72, 120 h; members' power / truth's, smallest-largest over degrees and those leads.")
    return "\n".join(head + rows + ["", legend, f"Sources: `docs/results/skill/{window}_{pattern}.json` "
                                    f"({_provenance(*records) if records else 'none yet'})."])


def skill_validation() -> str:
    """Settings compared on the validation window (``benchmarks/skill.py NAME --window validation``)."""
    return _settings_table("validation", "*")


def skill_test() -> str:
    """The chosen setting on the test window of three realisations (``--window test swe.seed=N``)."""
    return _settings_table("test", "*")


def _geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


FIRST_RECORD = {"days": 48.0, "output_step_hours": 1.0}   # the record of every setting before records had a key


def _record(figures: dict[str, Any]) -> tuple[float, float]:
    """The record a setting was scored on: its length and store step (``swe.days``,
    ``swe.output_step_hours``), from the results file, else from its overrides."""
    record = dict(FIRST_RECORD)
    record.update(figures.get("record") or {})
    for override in figures.get("overrides", []):
        key, _, value = override.partition("=")
        if key.startswith("swe.") and key.removeprefix("swe.") in record:
            record[key.removeprefix("swe.")] = float(value)
    return record["days"], record["output_step_hours"]


def skill_ranking() -> str:
    """One line per validation setting, the numbers the choice was made on: the geometric mean of
    CRPS / perfect model over variables and 24, 72, 120 h; how many of the 16 (variable, lead)
    spread/skill values lie in [0.8, 1.2] and the worst one's factor from 1; the geometric mean
    over variables and leads of the members' largest power excess; the long-run steps."""
    records = {p.stem.removeprefix("validation_"): _load(p)
               for p in sorted((RESULTS / "skill").glob("validation_*.json"))}
    if not records:
        return "No results yet: no `docs/results/skill/validation_*.json`."
    head = ["| record | setting | CRPS / perfect (geometric mean) | spread/skill in [0.8, 1.2] | worst spread/skill factor "
            "| largest power excess (geometric mean) | long run: steps per seed |", "|---|---|---|---|---|---|---|"]
    lines = []
    for name, record in records.items():
        by_lead = list(_by_lead(record["figures"]["skill"]["sfno-crps"]))
        crps = _geometric_mean([row["crps_vs_perfect"][0] for _, lead, row in by_lead if lead in ("24", "72", "120")])
        ratios = [row["spread_skill"][0] for _, _, row in by_lead]
        worst = max(max(r, 1 / r) for r in ratios)
        power = _geometric_mean([row["power_ratio"]["max"] for _, _, row in by_lead if row["power_ratio"]])
        long_path = RESULTS / "skill" / f"long_{name}.json"
        steps = ", ".join(map(str, _load(long_path)["figures"]["steps_completed"])) if long_path.exists() else "-"
        inside = sum(0.8 <= r <= 1.2 for r in ratios)
        days, step = _record(record["figures"])
        lines.append(((days, step, crps), f"| {days:g} d / {step:g} h | {name} | {crps:.3f} | {inside} of {len(ratios)} | {worst:.2f} "
                                           f"| {_cell(power)} | {steps} |"))
    rows_sorted = [line for _, line in sorted(lines)]
    return "\n".join(head + rows_sorted + ["", "Record: the length of the record and its store step; each record has its own "
                                             "validation window, so settings compare only within one. Sorted by record, then by "
                                             "the CRPS column. Sources: `docs/results/skill/validation_*.json`, "
                                             f"`docs/results/skill/long_*.json` ({_provenance(*records.values())})."])


def skill_long() -> str:
    """Steps each validation setting's first model lasts without any limiter
    (``benchmarks/long_rollout.py --results docs/results/skill/long_NAME.json``)."""
    records = [(p.stem.removeprefix("long_"), _load(p)) for p in sorted((RESULTS / "skill").glob("long_*.json"))]
    if not records:
        return "No results yet: no `docs/results/skill/long_*.json` (`benchmarks/long_rollout.py --results ...`)."
    head = ["| setting | steps completed (one per noise seed) | of | limiters |", "|---|---|---|---|"]
    rows = []
    for name, record in records:
        f = record["figures"]
        limiters = ", ".join(f"{k} {v}" for k, v in f["limiters"].items() if v is not None) or "none"
        rows.append(f"| {name} | {', '.join(str(s) for s in f['steps_completed'])} | {f['steps']} | {limiters} |")
    return "\n".join(head + rows + ["", "Sources: `docs/results/skill/long_*.json` "
                                        f"({_provenance(*(r for _, r in records))})."])


def skill_gap() -> str:
    """Each setting's checkpoints on training and on validation init times
    (``benchmarks/generalisation.py .skill-runs/NAME --results docs/results/skill/gap_NAME.json``)."""
    records = [(p.stem.removeprefix("gap_"), _load(p)) for p in sorted((RESULTS / "skill").glob("gap_*.json"))]
    if not records:
        return "No results yet: no `docs/results/skill/gap_*.json` (`benchmarks/generalisation.py`)."
    leads = ("6", "24", "72")
    head = ["| setting | variable | " + " | ".join(f"{h} h: training | {h} h: validation" for h in leads) + " |",
            "|---|---|" + "---|---|" * len(leads)]
    rows = []
    for name, record in records:
        f = record["figures"]
        for variable in VARIABLES:
            cells = []
            for h in leads:
                for window in ("training", "validation"):
                    c = f[window][variable][h]
                    cells.append(f"{c['spread_skill']:.2f} / {c['rmse_vs_persistence']:.2f}")
            rows.append(f"| {name} | {variable} | " + " | ".join(cells) + " |")
    return "\n".join(head + rows + ["", "Cells: spread/skill / ensemble-mean RMSE over persistence's, the same checkpoints "
                                    "from the training window's last 8 init times and from the validation window's 8. "
                                    f"Sources: `docs/results/skill/gap_*.json` ({_provenance(*(r for _, r in records))})."])


GOALS = ("Goals (issue 34): spread/skill within [0.8, 1.2] at every lead from 6 h to 5 days; CRPS and "
         "ensemble-mean RMSE at most 1.15x the perfect model's at 24, 72 and 120 h; members' power within "
         "[0.5, 2] of the truth's at every degree and lead. A cell is marked **no** where the value misses it.")


def _goal(value: float, low: float, high: float) -> str:
    return "" if low <= value <= high else " **no**"


def _power_goal(power: dict[str, float]) -> str:
    """The mark of a members'-power range: both ends within [0.5, 2]."""
    return _goal(power["min"], 0.5, 2) or _goal(power["max"], 0.5, 2) if power else ""


def skill_goals() -> str:
    """The chosen setting against the goals, per realisation, variable and lead, with intervals
    (``docs/results/skill/test_*.json``)."""
    records = [_load(p) for p in sorted((RESULTS / "skill").glob("test_*.json"))]
    if not records:
        return "No results yet: no `docs/results/skill/test_*.json` (`benchmarks/skill.py NAME --window test`)."
    head = ["| record | variable | lead | CRPS / perfect | ens-mean RMSE / perfect | spread/skill "
            "| members' power / truth's (min-max) |", "|---|---|---|---|---|---|---|"]
    rows = []
    for record in records:
        f = record["figures"]
        for model, skill in f["skill"].items():
            if model == "perfect_model":
                continue
            for variable, lead, row in _by_lead(skill):
                crps, rmse, ss = row.get("crps_vs_perfect"), row.get("ens_rmse_vs_perfect"), row["spread_skill"]
                power = row.get("power_ratio", {})
                scored = lead != "6"   # the CRPS and RMSE goals are for 24, 72 and 120 h
                rows.append(f"| swe.seed={f['swe_seed']} | {variable} | {lead} h "
                            f"| {_triple(crps)}{_goal(crps[0], 0, 1.15) if crps and scored else ''} "
                            f"| {_triple(rmse)}{_goal(rmse[0], 0, 1.15) if rmse and scored else ''} "
                            f"| {_triple(ss)}{_goal(ss[0], 0.8, 1.2)} "
                            f"| {_power(power)}{_power_goal(power)} |")
    return "\n".join(head + rows + ["", GOALS, "values [90 % bootstrap interval over the window's init times]. "
                                    f"Sources: `docs/results/skill/test_*.json` ({_provenance(*records)})."])


def _cell(value: Any) -> str:
    """A table cell: numbers to 3 significant figures (integers in full), booleans as yes/no."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return "0"
        exponent = math.floor(math.log10(abs(value)))
        if not -3 <= exponent < 6:
            return f"{value:.2e}"
        rounded = round(value, 2 - exponent)
        return f"{rounded:.{max(0, 2 - exponent)}f}"
    return str(value).replace("|", "\\|")


def _markdown_table(table: dict[str, Any]) -> list[str]:
    lines = [f"**{table['title']}**", "", "| " + " | ".join(_cell(c) for c in table["columns"]) + " |",
             "|" + "---|" * len(table["columns"])]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table["rows"]]
    return lines + ([""] + [table["note"]] if table.get("note") else []) + [""]


def benchmark_tables(name: str) -> str:
    """Every table of ``docs/results/benchmarks/NAME.json`` (``figures["tables"]``, written by
    ``benchmarks/NAME.py`` through :func:`forecast.results.table`), then its source line."""
    path = RESULTS / "benchmarks" / f"{name}.json"
    source = f"`docs/results/benchmarks/{name}.json`"
    if not path.exists():
        return f"No results yet: {source} does not exist (run the command above)."
    record = _load(path)
    lines = [line for table in record["figures"]["tables"] for line in _markdown_table(table)]
    return "\n".join(lines + [f"Source: {source} ({_provenance(record)})."])


TABLES: dict[str, Callable[[], str]] = {
    "demo-skill": demo_skill, "demo-timings": demo_timings,
    "skill-validation": skill_validation, "skill-test": skill_test, "skill-goals": skill_goals,
    "skill-long": skill_long, "skill-ranking": skill_ranking, "skill-gap": skill_gap,
}


def render_text(text: str) -> str:
    """``text`` with every generated table replaced by its rendering."""
    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        if name.startswith("bench-"):
            body = benchmark_tables(name.removeprefix("bench-"))
        elif name in TABLES:
            body = TABLES[name]()
        else:
            raise KeyError(f"unknown generated table {name!r}; known: {', '.join(TABLES)}, bench-BENCHMARK")
        return f"{match.group(1)}{body}\n{match.group(4)}"

    return MARK.sub(replace, text)


def documents() -> list[Path]:
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed table differs from its rendering")
    parser.add_argument("paths", nargs="*", type=Path, help="documents to render (default: README.md and docs/*.md)")
    args = parser.parse_args()
    paths = [p.resolve() for p in args.paths] or documents()
    stale = []
    for path in paths:
        text = path.read_text()
        rendered = render_text(text)
        if rendered != text:
            stale.append(path)
            if not args.check:
                path.write_text(rendered)
    if args.check and stale:
        print("stale generated tables in: " + ", ".join(str(p.relative_to(REPO)) for p in stale), file=sys.stderr)
        return 1
    print(("checked " if args.check else "rendered ") + f"{len(paths)} document(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
