"""The stochastic SFNO's step noise: innovations kept across steps against drawn afresh.

    python benchmarks/noise.py [--steps 20] [--members 16] [--phi 0.8 0.9] [--repeats 3] [--results PATH]

A step's AR(1) noise sums the innovations of its last K steps (``PrognosticModel.step_noise``,
K = 31 for phi 0.8, 66 for 0.9). Drawn afresh, a run of n steps draws n (K + 1) innovations;
kept in an :class:`~forecast.models.innovations.InnovationMemo` (what training and the rollout
engine do), it draws K + n. This times the noise of ``--steps`` steps for ``--members`` members
of the demo's stochastic SFNO (its grid, noise channels and length scales) both ways, checks
that both give the same numbers to the bit, and prints the ratio (median of ``--repeats``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forecast.config import DemoConfig, ModelConfig  # noqa: E402
from forecast.models import model_class  # noqa: E402
from forecast.models.base import seeded_generator  # noqa: E402
from forecast.models.innovations import InnovationMemo  # noqa: E402
from forecast.results import add_results_option, table, write_results  # noqa: E402
from pipelines.grids import Grid  # noqa: E402


def demo_model(phi: float):
    demo = DemoConfig()
    config = ModelConfig.model_validate({**demo.sfno.model_dump(), "noise_channels": demo.stochastic.noise_channels,
                                         "noise_length_scales_km": demo.stochastic.noise_length_scales_km,
                                         "noise_autocorrelation": phi})
    return model_class(config).from_config(config, Grid.parse(demo.grid), n_state=4, n_forcing=0)


def run(model, steps: int, members: int, memoised: bool) -> tuple[float, list[torch.Tensor]]:
    def draw(step: int) -> torch.Tensor:
        return model.draw_noise([seeded_generator(7, m, step) for m in range(members)])

    memo = InnovationMemo(draw)
    start, out = time.perf_counter(), []
    for s in range(steps):
        out.append(model.step_noise((lambda lag, s=s: memo(s - lag)) if memoised else (lambda lag, s=s: draw(s - lag))))
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--phi", type=float, nargs="+", default=[0.8, 0.9])
    parser.add_argument("--repeats", type=int, default=3)
    add_results_option(parser, "noise")
    args = parser.parse_args()
    rows = []
    for phi in args.phi:
        model = demo_model(phi)
        fresh, kept = [], []
        for _ in range(args.repeats):
            t_fresh, a = run(model, args.steps, args.members, memoised=False)
            t_kept, b = run(model, args.steps, args.members, memoised=True)
            if not all(torch.equal(x, y) for x, y in zip(a, b)):
                raise SystemExit("memoised noise differs from the noise drawn afresh")
            fresh.append(t_fresh)
            kept.append(t_kept)
        f, k = statistics.median(fresh), statistics.median(kept)
        rows.append([phi, model.noise_lags, round(f, 3), round(k, 3), round(f / k, 1)])
        print(f"phi {phi}: K = {model.noise_lags}; {args.steps} steps x {args.members} members: "
              f"drawn afresh {f:.3f} s, kept {k:.3f} s, ratio {f / k:.1f}x (same numbers)")
    path = write_results(args.results, "noise", {"tables": [table(
        f"Step noise of {args.steps} steps, {args.members} members, the demo's SFNO",
        ["phi", "K (lags)", "drawn afresh (s)", "kept (s)", "ratio"], rows,
        note=f"median of {args.repeats} repeats; both give the same numbers to the bit")]})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
