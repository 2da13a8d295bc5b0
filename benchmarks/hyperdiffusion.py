"""Cost of the hyperdiffusion filter in the model step (``model.hyperdiffusion_efold_hours``).

    python benchmarks/hyperdiffusion.py [--grid legendre-gauss:64x128] [--batch 4] [--repeats 20] [--results PATH]

Times a training step (forward + backward) and an inference step of the demo's SFNO
(embed_dim 32, 4 layers, scale factor 2; state gh, u, v, vo) with and without the filter,
and the filter alone, prints the ratios and writes them to ``--results``
(:mod:`forecast.results`). Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecast.config import ModelConfig  # noqa: E402
from forecast.models import TrainedOn, build_model, build_step_constraints, constrained_step  # noqa: E402
from forecast.results import add_results_option, table, write_results  # noqa: E402
from pipelines.grids import Grid  # noqa: E402

VARIABLES = ["gh", "u", "v", "vo"]


def seconds(fn, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grid", default="legendre-gauss:64x128")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=20)
    add_results_option(parser, "hyperdiffusion")
    args = parser.parse_args()
    grid = Grid.parse(args.grid)
    torch.manual_seed(0)
    size = dict(embed_dim=32, num_layers=4, scale_factor=2)
    model = build_model(ModelConfig(**size), grid, 4, 3)
    trained_on = TrainedOn(grid, VARIABLES, 6 * 3600.0, np.array([1e5, 0.0, 0.0, 0.0]), np.array([3e3, 10.0, 10.0, 1e-5]))
    constraints = build_step_constraints([ModelConfig(**size, hyperdiffusion_efold_hours=2.0, hyperdiffusion_degree=21)],
                                         trained_on)[0]
    state = torch.randn(args.batch, 4, grid.nlat, grid.nlon)
    forcings = torch.randn(args.batch, 3, grid.nlat, grid.nlon)
    steps = {"SFNO": lambda: model(state, forcings),
             "SFNO + hyperdiffusion": lambda: constrained_step(model, constraints, state, forcings)}

    def train_step(step):
        def run():
            model.zero_grad()
            step().square().mean().backward()
        return run

    def infer_step(step):
        def run():
            with torch.no_grad():
                step()
        return run

    results = {name: (seconds(train_step(step), args.repeats), seconds(infer_step(step), args.repeats))
               for name, step in steps.items()}
    with torch.no_grad():
        alone = seconds(lambda: constraints(state, state), args.repeats)
    print(f"{grid}, batch {args.batch}, {torch.get_num_threads()} threads; median of {args.repeats}")
    base_train, base_infer = results["SFNO"]
    for name, (train, infer) in results.items():
        print(f"{name:24s} training step {1e3 * train:8.1f} ms ({train / base_train:.2f}x)   "
              f"inference step {1e3 * infer:8.1f} ms ({infer / base_infer:.2f}x)")
    print(f"{'the filter alone':24s} {1e3 * alone:.1f} ms ({alone / base_infer:.2f} of an SFNO inference step)")
    rows = [[name, 1e3 * train, train / base_train, 1e3 * infer, infer / base_infer]
            for name, (train, infer) in results.items()]
    rows.append(["the filter alone", "-", "-", 1e3 * alone, alone / base_infer])
    title = f"The demo's SFNO with and without hyperdiffusion, {grid}, batch {args.batch}"
    figures = {"grid": str(grid), "batch": args.batch, "repeats": args.repeats, "tables": [table(
        title, ["step", "training (ms)", "training / SFNO's", "inference (ms)", "inference / SFNO's"], rows,
        f"Median of {args.repeats} calls after two warm-up calls; {torch.get_num_threads()} torch threads.")]}
    print(f"results: {write_results(args.results, 'hyperdiffusion', figures)}")


if __name__ == "__main__":
    main()
