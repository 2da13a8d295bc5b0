"""Probabilistic skill of a demo setting, scored against the perfect model, with intervals.

    python benchmarks/skill.py NAME [--window validation|test] [--config configs/demo.yaml]
        [--data-dir .skill-data] [--results docs/results/skill] [KEY=VALUE ...]

Runs ``forecast demo`` (the same code: data, training, rollout, perfect model, verification)
with the demo config plus the ``KEY=VALUE`` overrides, scores the forecasts on ``--window``
(``validation``: where settings are chosen; ``test``: what is reported, only for settings
chosen before), and writes ``<results>/<window>_<NAME>.json`` (:mod:`forecast.results`): the
overrides, the skill summary of every model (:func:`forecast.verify.summary.skill_summary`:
CRPS and ensemble-mean RMSE over the perfect model's and spread/skill with 90 % bootstrap
intervals, members' power over the truth's at every degree) at 6, 24, 72 and 120 h, the
perfect model's own calibration, and the timings. The data of a record (``swe`` settings) are
kept in ``--data-dir`` and reused by every setting, so settings are compared on the same record.

Other realisations of the same climate: ``swe.seed=1``. Not a test: minutes per setting.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forecast.config import DemoConfig  # noqa: E402
from forecast.demo import demo  # noqa: E402
from forecast.results import write_results  # noqa: E402
from pipelines.config import load_config  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a name for the setting (the results file's)")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE demo-config overrides, e.g. stochastic.models=2")
    parser.add_argument("--window", choices=["validation", "test"], default="validation")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".skill-data")
    parser.add_argument("--work-dir", type=Path, default=REPO / ".skill-runs")
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "results" / "skill")
    args = parser.parse_intermixed_args()

    config = load_config(DemoConfig, args.config, [f"workdir={args.work_dir / args.name}", *args.overrides])
    seed_dir = args.data_dir / f"swe-seed{config.swe.seed}"
    result = demo(config, window=args.window, data_dir=seed_dir)
    demo_results = json.loads((result.workdir / "results.json").read_text())["figures"]
    figures = {"setting": args.name, "overrides": args.overrides, "window": args.window,
               "swe_seed": config.swe.seed,
               "record": {"days": config.swe.days, "output_step_hours": config.swe.output_step_hours},
               "skill": demo_results["skill"], "timings": demo_results["timings"]}
    out = write_results(args.results / f"{args.window}_{args.name}.json", "skill", figures)
    print(f"results: {out}")
    for model, per_variable in demo_results["skill"].items():
        for variable, per_lead in per_variable.items():
            cells = []
            for lead, row in per_lead.items():
                crps = row.get("crps_vs_perfect", [float("nan")])[0]
                cells.append(f"{lead} h: CRPS/perfect {crps:.2f} spread/skill {row['spread_skill'][0]:.2f} "
                             f"power {row['power_ratio'].get('min', float('nan')):.2f}-"
                             f"{row['power_ratio'].get('max', float('nan')):.3g}")
            print(f"{model:14s} {variable:3s} " + " | ".join(cells))


if __name__ == "__main__":
    main()
