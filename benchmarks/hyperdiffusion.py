"""Cost of the hyperdiffusion filter in the model step (``model.hyperdiffusion_efold_hours``).

    python benchmarks/hyperdiffusion.py [--grid legendre-gauss:64x128] [--batch 4] [--repeats 20]

Times a training step (forward + backward) and an inference step of the demo's SFNO
(embed_dim 32, 4 layers, scale factor 2; state gh, u, v, vo) with and without the filter,
and the filter alone, and prints the ratios. Not a test: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecast.config import ModelConfig  # noqa: E402
from forecast.models import build_model  # noqa: E402
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
    args = parser.parse_args()
    grid = Grid.parse(args.grid)
    torch.manual_seed(0)
    size = dict(embed_dim=32, num_layers=4, scale_factor=2)
    plain = build_model(ModelConfig(**size), grid, 4, 3, VARIABLES)
    filtered = build_model(ModelConfig(**size, hyperdiffusion_efold_hours=2.0, hyperdiffusion_degree=21),
                           grid, 4, 3, VARIABLES)
    filtered.set_time_step(6 * 3600)
    filtered.set_normalisation([1e5, 0.0, 0.0, 0.0], [3e3, 10.0, 10.0, 1e-5])
    state = torch.randn(args.batch, 4, grid.nlat, grid.nlon)
    forcings = torch.randn(args.batch, 3, grid.nlat, grid.nlon)

    def train_step(model):
        def step():
            model.zero_grad()
            model(state, forcings).square().mean().backward()
        return step

    def infer_step(model):
        def step():
            with torch.no_grad():
                model(state, forcings)
        return step

    results = {}
    for name, model in (("SFNO", plain), ("SFNO + hyperdiffusion", filtered)):
        results[name] = (seconds(train_step(model), args.repeats), seconds(infer_step(model), args.repeats))
    with torch.no_grad():
        alone = seconds(lambda: filtered.hyperdiffusion(state), args.repeats)
    print(f"{grid}, batch {args.batch}, {torch.get_num_threads()} threads; median of {args.repeats}")
    base_train, base_infer = results["SFNO"]
    for name, (train, infer) in results.items():
        print(f"{name:24s} training step {1e3 * train:8.1f} ms ({train / base_train:.2f}x)   "
              f"inference step {1e3 * infer:8.1f} ms ({infer / base_infer:.2f}x)")
    print(f"{'the filter alone':24s} {1e3 * alone:.1f} ms ({alone / base_infer:.2f} of an SFNO inference step)")


if __name__ == "__main__":
    main()
