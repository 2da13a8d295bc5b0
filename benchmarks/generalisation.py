"""Ensemble over-fitting: the same checkpoints scored on training init times and on validation ones.

    python benchmarks/generalisation.py RUN_DIR [--store STORE] [--lead 72h] [--members 16]
        [--results docs/results/skill/gap_NAME.json]

``RUN_DIR`` is a ``forecast demo`` or ``benchmarks/skill.py`` work directory (``.skill-runs/NAME``):
its stochastic SFNO copies (``runs/sfno-crps/model*/checkpoints/latest.pt``) are rolled out from
the last 8 init times of the training window that leave room for the lead (12 h apart, as the
scored windows), and from the validation window's 8 init times, with the same members, seed and
no limiter (``forecast rollout``), and scored by ``forecast verify``. Printed and written per
variable and lead: the spread/skill and the ensemble-mean RMSE over persistence's in each window.

A model that generalises scores alike in the two windows. One that fits its training record
shows a smaller error there, and, trained on the CRPS, a spread that matches that smaller error:
spread/skill near 1 on the training times and below 1 on unseen ones. Not a test: a minute or so.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forecast.config import PerturbationConfig, RolloutConfig, TrainConfig, VerifyConfig, WindowsConfig  # noqa: E402
from forecast.results import add_results_option, table, write_results  # noqa: E402
from forecast.rollout import rollout  # noqa: E402
from forecast.verify.scores_file import open_scores  # noqa: E402
from forecast.verify.workflow import verify  # noqa: E402
from forecast.windows import split_windows  # noqa: E402
from pipelines.config import load_config  # noqa: E402
from pipelines.store import open_store  # noqa: E402

VARIABLES = ("gh", "u", "v", "vo")


def training_inits(times: pd.DatetimeIndex, train_end: pd.Timestamp, inits: int, every_hours: float,
                   lead: pd.Timedelta) -> list[pd.Timestamp]:
    """The last ``inits`` init times, ``every_hours`` apart, whose forecasts end inside the training window."""
    last = train_end - lead
    wanted = [last - pd.Timedelta(hours=every_hours) * k for k in reversed(range(inits))]
    if wanted[0] < times[0]:
        raise SystemExit(f"the training window ({times[0]} .. {train_end}) is too short for {inits} inits and {lead}")
    return wanted


def score(checkpoints: list[Path], store: Path, inits: list[pd.Timestamp], lead: str, members: int, seed: int,
          work: Path, name: str) -> dict[str, dict[str, dict[str, float]]]:
    forecast = rollout(RolloutConfig(checkpoints=[str(c) for c in checkpoints], initial=str(store),
                                     init_times=[t.isoformat() for t in inits], lead=lead, members=members,
                                     perturbation=PerturbationConfig(kind=["none"]), seed=seed,
                                     out=str(work / f"{name}.zarr")))
    scores = open_scores(verify(VerifyConfig(forecast=str(forecast), truth=str(store), out=str(work / f"{name}.nc"),
                                             baselines=["persistence"], metrics=["rmse", "spread_skill"])))
    out: dict[str, dict[str, dict[str, float]]] = {}
    for variable in VARIABLES:
        s = scores[variable].sel(region="global")
        rmse = s.sel(metric="rmse")
        ratio = (rmse.sel(model="forecast") / rmse.sel(model="persistence")).values
        spread_skill = s.sel(model="forecast", metric="spread_skill").values
        hours = scores.lead_time.values / np.timedelta64(1, "h")
        out[variable] = {f"{h:g}": {"spread_skill": float(ss), "rmse_vs_persistence": float(r)}
                         for h, ss, r in zip(hours, spread_skill, ratio) if h > 0}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a demo or benchmarks/skill.py work directory")
    parser.add_argument("--store", type=Path, default=None, help="the training store (default: the run's)")
    parser.add_argument("--lead", default="72h")
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    add_results_option(parser, "generalisation")
    args = parser.parse_args()

    checkpoints = sorted(args.run_dir.glob("runs/sfno-crps/model*/checkpoints/latest.pt"))
    if not checkpoints:
        raise SystemExit(f"no runs/sfno-crps/model*/checkpoints/latest.pt under {args.run_dir}")
    train_config = load_config(TrainConfig, checkpoints[0].parents[1] / "config.yaml", [])
    store = args.store or Path(train_config.store)
    times = open_store(store).times
    windows = WindowsConfig()
    split = split_windows(times, windows.inits, windows.init_every_hours, windows.lead_hours)
    lead = pd.Timedelta(args.lead)
    sets = {"training": training_inits(times, split.train.end, windows.inits, windows.init_every_hours, lead),
            "validation": list(split.validation.inits)}
    with tempfile.TemporaryDirectory() as tmp:
        figures = {name: score(checkpoints, store, inits, args.lead, args.members, args.seed, Path(tmp), name)
                   for name, inits in sets.items()}
    figures["inits"] = {name: [t.isoformat() for t in inits] for name, inits in sets.items()}
    figures["checkpoints"] = [str(c) for c in checkpoints]
    leads = list(figures["training"]["gh"])
    shown = [h for h in leads if h in ("6", "24", "48", "72", "120")]
    rows = [[variable, window, *[f"{figures[window][variable][h]['spread_skill']:.2f} / "
                                  f"{figures[window][variable][h]['rmse_vs_persistence']:.2f}" for h in shown]]
            for variable in VARIABLES for window in sets]
    columns = ["variable", "init times", *[f"{h} h" for h in shown]]
    figures["tables"] = [table(f"{args.run_dir.name}: training against validation init times", columns, rows,
                               note="spread/skill / ensemble-mean RMSE over persistence's; the same checkpoints, "
                                    f"{args.members} members, 8 init times each")]
    for row in [columns, *rows]:
        print("  ".join(f"{c:>12s}" for c in row))
    print(f"results: {write_results(args.results, 'generalisation', figures)}")


if __name__ == "__main__":
    main()
