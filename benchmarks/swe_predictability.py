"""How predictable is the stirred shallow-water flow? A perfect model that does not know the stirring.

    python benchmarks/swe_predictability.py [--grid legendre-gauss:64x128] [--spinup-days 20]
        [--inits 3] [--init-every-hours 12] [--members 8] [--lead-hours 120] [--results PATH]

With ``swe.stirring`` the embedded flow is driven by a random forcing that no emulator sees.
This runs the solver itself as the forecast model: from the truth's exact state at each init
time, ``--members`` copies integrate the same equations with stirring drawn from other seeds
(the forcing's own state at the init time unknown too, drawn from its stationary distribution).
Their ensemble-mean error is the floor that any model of the state alone faces; it prints the
area-weighted RMSE of ``gh`` (m) of the ensemble mean, of one member, and of persistence, and
the ratio ensemble-mean / persistence, at 6, 24, 72 and 120 h (or the leads up to
``--lead-hours``), averaged (as mean squares) over the init times, and writes them to
``--results`` (:mod:`forecast.results`).

Defaults are the stirred demo's: solver on 64x128 with its default stirring, 20 days of
spin-up (the start of the store), inits 12 h apart. Not a test.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecast.results import add_results_option, table, write_results  # noqa: E402
from pipelines.grids import Grid  # noqa: E402
from pipelines.sources.shallow_water import (AdamsBashforth3, Stirring, StirringForce, SWEParameters,  # noqa: E402
                                             build_solver, grid_fields, initial_condition)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="legendre-gauss:64x128")
    parser.add_argument("--substep-seconds", type=float, default=450.0)
    parser.add_argument("--spinup-days", type=float, default=20.0)
    parser.add_argument("--inits", type=int, default=3)
    parser.add_argument("--init-every-hours", type=float, default=12.0)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--lead-hours", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    add_results_option(parser, "swe_predictability")
    args = parser.parse_args()

    torch.set_num_threads(1)
    params = SWEParameters(Grid.parse(args.grid), substep_seconds=args.substep_seconds, seed=args.seed,
                           stirring=Stirring())
    params.validate()
    assert params.stirring is not None
    solver = build_solver(params)
    per_hour = round(3600 / args.substep_seconds)
    leads = [h for h in (6, 24, 72, 120) if h <= args.lead_hours]
    weights = np.asarray(params.grid.quadrature_weights, dtype=np.float64)
    weights = weights / weights.sum()

    def rmse2(a: np.ndarray, b: np.ndarray) -> float:
        return float(weights @ ((a - b) ** 2).mean(-1))

    every = round(args.init_every_hours)
    init_hours = [k * every for k in range(args.inits)]
    wanted = sorted({h + lead for h in init_hours for lead in [0, *leads]})
    with torch.inference_mode():
        # the truth: one stirred run; its gh at every time a score needs, its state at each init
        truth = AdamsBashforth3(solver, initial_condition(solver, args.seed),
                                StirringForce(solver, params.stirring, args.seed))
        truth.step(round(args.spinup_days * 24 * per_hour))
        truth_gh, starts, hour = {}, {}, 0
        for h in wanted:
            truth.step((h - hour) * per_hour)
            hour = h
            truth_gh[h] = grid_fields(solver, truth.uspec)[0]
            if h in init_hours:
                starts[h] = truth.uspec.clone()
        sums = {lead: np.zeros(3) for lead in leads}
        for k, h0 in enumerate(init_hours):
            members: dict[int, list[np.ndarray]] = {lead: [] for lead in leads}
            for m in range(args.members):
                copy = AdamsBashforth3(solver, starts[h0].clone(),
                                       StirringForce(solver, params.stirring, 10_000 + 100 * k + m))
                elapsed = 0
                for lead in leads:
                    copy.step((lead - elapsed) * per_hour)
                    elapsed = lead
                    members[lead].append(grid_fields(solver, copy.uspec)[0])
            for lead in leads:
                valid = truth_gh[h0 + lead]
                sums[lead] += [rmse2(np.mean(members[lead], axis=0), valid), rmse2(members[lead][0], valid),
                               rmse2(truth_gh[h0], valid)]
            print(f"init {k + 1}/{args.inits} done", flush=True)
    print(f"\ngh (m), {args.inits} inits x {args.members} members: the solver from the true state, stirring unknown")
    print(f"{'lead (h)':>9} {'ens-mean RMSE':>14} {'member RMSE':>12} {'persistence':>12} {'ens-mean / persistence':>23}")
    rows = []
    for lead in leads:
        ens, member, persistence = np.sqrt(sums[lead] / args.inits)
        print(f"{lead:9d} {ens:14.1f} {member:12.1f} {persistence:12.1f} {ens / persistence:23.2f}")
        rows.append([lead, float(ens), float(member), float(persistence), float(ens / persistence)])
    title = (f"gh RMSE (m) of the solver run from the true state with unknown stirring, {args.grid}, "
             f"{args.inits} inits x {args.members} members")
    figures = {"grid": args.grid, "spinup_days": args.spinup_days, "inits": args.inits,
               "init_every_hours": args.init_every_hours, "members": args.members, "seed": args.seed,
               "tables": [table(title, ["lead (h)", "ensemble mean", "one member", "persistence",
                                        "ensemble mean / persistence"], rows,
                                "Area-weighted RMSE, mean squares averaged over init times "
                                f"{args.init_every_hours:g} h apart after {args.spinup_days:g} days of spin-up.")]}
    print(f"results: {write_results(args.results, 'swe_predictability', figures)}")


if __name__ == "__main__":
    main()
