"""Spherical DYffusion's cost against one SFNO of the same size.

* Inference: one 6 h model step of a 16-member ensemble by cold sampling (dropout on,
  seeded masks; ``h`` forecaster + ``2(h-1)`` interpolator calls) against one forward call
  of the deterministic SFNO on the same members. The paper counts SFNO calls per *output*
  step, its output steps being the interpolated ones; here the ratio is per model step, and
  per written state with ``rollout --intermediate``.
* Training: one optimiser step of each stage (interpolator: one call with gradients;
  forecaster: one interpolator call without, one forecaster call with) against one SFNO
  training step, same batch.

Sizes are the demo's (LG 64x128, 4 state + 3 forcing channels, embed_dim 32, 4 blocks,
scale_factor 2, h = 6). Timings interleave the candidates after warm-up; medians. The
results go to ``--results`` (:mod:`forecast.results`).

    python benchmarks/dyffusion.py --threads 2 [--repeats 5] [--results PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forecast.config import ModelConfig  # noqa: E402
from forecast.losses import AreaWeightedMSE  # noqa: E402
from forecast.models import build_model  # noqa: E402
from forecast.results import add_results_option, table, write_results  # noqa: E402
from forecast.training.dyffusion import AreaWeightedL1, DYffusionObjective  # noqa: E402
from pipelines.grids import Grid  # noqa: E402


def interleaved_medians(candidates: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds per call of each candidate: one warm-up call each, then ``repeats``
    rounds that call every candidate once in turn (so drifting load hits all alike)."""
    for fn in candidates.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--horizon", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    add_results_option(parser, "dyffusion")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    grid, n_state, n_forcing, h = Grid.parse("legendre-gauss:64x128"), 4, 3, args.horizon
    size = dict(embed_dim=32, num_layers=4, scale_factor=2)
    torch.manual_seed(0)
    sfno = build_model(ModelConfig(architecture="sfno", **size), grid, n_state, n_forcing).eval()
    dyffusion = build_model(ModelConfig(architecture="dyffusion", mlp_dropout=0.1, drop_path_rate=0.1, **size),
                            grid, n_state, n_forcing)
    dyffusion.set_horizon(h)
    dyffusion.eval()

    state = torch.randn(args.members, n_state, grid.nlat, grid.nlon)
    forcings = torch.randn(args.members, n_forcing, grid.nlat, grid.nlon)
    noise = dyffusion.draw_noise([torch.Generator().manual_seed(m) for m in range(args.members)])
    # member masks (rollout.member_dropout) on top of the fresh ones: a second mask per call
    dyffusion.member_dropout = 0.4
    with_members = torch.stack([noise, dyffusion.draw_noise([torch.Generator().manual_seed(1000 + m) for m in range(args.members)])], 1)

    with torch.inference_mode():
        inference = interleaved_medians({"sfno": lambda: sfno(state, forcings),
                                         "dyffusion": lambda: dyffusion(state, forcings, noise),
                                         "dyffusion, member masks": lambda: dyffusion(state, forcings, with_members),
                                         "dyffusion, no dropout": lambda: dyffusion(state, forcings)}, args.repeats)
    calls = 3 * h - 2
    print(f"inference, one {h}-store-step model step of {args.members} members (LG 64x128, h = {h}):")
    for name, seconds in inference.items():
        print(f"  {name:24s} {seconds * 1e3:8.1f} ms  ({seconds / inference['sfno']:.2f} SFNO calls)")
    print(f"  network calls per model step: {calls} ({calls / h:.2f} per written state with --intermediate); "
          f"dropout masks cost {inference['dyffusion'] / inference['dyffusion, no dropout']:.2f}x")

    # training: one optimiser step per stage vs one SFNO step, batch `--batch`
    path = torch.randn(args.batch, h + 1, n_state, grid.nlat, grid.nlon)
    f0 = forcings[: args.batch]
    seeds = torch.arange(args.batch, dtype=torch.int64)
    mse, l1 = AreaWeightedMSE(grid, torch.ones(n_state).numpy()), AreaWeightedL1(grid, torch.ones(n_state).numpy())
    sfno.train()
    sfno_opt = torch.optim.AdamW(sfno.parameters(), lr=1e-4)

    def sfno_step() -> None:
        loss = mse(sfno(path[:, 0], f0), path[:, h])
        sfno_opt.zero_grad(set_to_none=True)
        loss.backward()
        sfno_opt.step()

    steps: dict[str, Callable[[], None]] = {"sfno": sfno_step}
    for stage in ("interpolator", "forecaster"):
        objective = DYffusionObjective(dyffusion.train(), stage, mse, l1)
        optimiser = torch.optim.AdamW([p for p in dyffusion.parameters() if p.requires_grad], lr=1e-4)

        def stage_step(objective=objective, optimiser=optimiser) -> None:
            objective.select()   # the two objectives share the model
            loss = objective(path, f0, seeds)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

        steps[stage] = stage_step
    training = interleaved_medians(steps, args.repeats)
    print(f"training, one optimiser step, batch {args.batch}:")
    for name, seconds in training.items():
        print(f"  {name:24s} {seconds * 1e3:8.1f} ms  ({seconds / training['sfno']:.2f}x the SFNO's)")
    note = f"Median of {args.repeats} interleaved rounds after one warm-up call each; {args.threads} torch threads."
    tables = [
        table(f"Inference: one model step (h = {h}) of {args.members} members, LG 64x128",
              ["model", "ms", "SFNO calls"],
              [[name, 1e3 * seconds, seconds / inference["sfno"]] for name, seconds in inference.items()],
              f"{note} Cold sampling makes {calls} network calls per model step, "
              f"{calls / h:.2f} per written state with --intermediate."),
        table(f"Training: one optimiser step, batch {args.batch}", ["stage", "ms", "ratio to the SFNO's"],
              [[name, 1e3 * seconds, seconds / training["sfno"]] for name, seconds in training.items()], note),
    ]
    figures = {"members": args.members, "batch": args.batch, "horizon": h, "threads": args.threads,
               "repeats": args.repeats, "network_calls_per_step": calls, "tables": tables}
    print(f"results: {write_results(args.results, 'dyffusion', figures)}")


if __name__ == "__main__":
    main()
