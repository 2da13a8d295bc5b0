"""Our verification metrics against the ``scores`` package on the same data.

1 degree equiangular grid (181 x 360), 16 members, 20 lead times, float64 in memory;
area weights from :meth:`pipelines.grids.Grid.area_weights`; every metric reduced over
``(lat, lon)`` (one value per lead time). Prints the wall time of each and the ratio
``ours / scores`` (goal: <= 1), after checking both give the same numbers (1e-6), and writes
them to ``--results`` (:mod:`forecast.results`).

    python benchmarks/verify.py [--members 16] [--leads 20] [--repeat 3] [--results PATH]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scores
import xarray as xr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from forecast.results import add_results_option, table, write_results  # noqa: E402
from forecast.verify import bias, crps_ensemble, ensemble_mean_rmse, mae, rmse  # noqa: E402
from pipelines.grids import Grid  # noqa: E402


def make_data(grid: Grid, members: int, leads: int, seed: int = 0) -> tuple[xr.DataArray, xr.DataArray]:
    rng = np.random.default_rng(seed)
    coords = {"lead_time": np.arange(leads), **grid.coords()}
    truth = xr.DataArray(rng.normal(size=(leads, *grid.shape)), dims=("lead_time", "lat", "lon"), coords=coords)
    noise = rng.normal(size=(members, leads, *grid.shape))
    forecast = xr.DataArray(truth.values[None] + 0.2 + noise, dims=("member", "lead_time", "lat", "lon"),
                            coords={"member": np.arange(members), **coords})
    return forecast, truth


def best_time(fn: Callable[[], xr.DataArray], repeat: int) -> tuple[float, np.ndarray]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = np.asarray(fn())
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--leads", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    add_results_option(parser, "verify")
    args = parser.parse_args()
    grid = Grid("equiangular", 181, 360)
    fc, truth = make_data(grid, args.members, args.leads)
    w = grid.area_weights()
    space = ("lat", "lon")
    cases = {
        "rmse (member 0)": (lambda: rmse(fc[0], truth, w, space),
                            lambda: scores.continuous.rmse(fc[0], truth, reduce_dims=list(space), weights=w)),
        "mae (member 0)": (lambda: mae(fc[0], truth, w, space),
                           lambda: scores.continuous.mae(fc[0], truth, reduce_dims=list(space), weights=w)),
        "bias (member 0)": (lambda: bias(fc[0], truth, w, space),
                            lambda: scores.continuous.additive_bias(fc[0], truth, reduce_dims=list(space), weights=w)),
        "ensemble-mean rmse": (lambda: ensemble_mean_rmse(fc, truth, w, space),
                               lambda: scores.continuous.rmse(fc.mean("member"), truth, reduce_dims=list(space), weights=w)),
        "crps (ecdf)": (lambda: crps_ensemble(fc, truth, w, space),
                        lambda: scores.probability.crps_for_ensemble(fc, truth, "member", method="ecdf",
                                                                     reduce_dims=list(space), weights=w)),
        "crps (fair)": (lambda: crps_ensemble(fc, truth, w, space, fair=True),
                        lambda: scores.probability.crps_for_ensemble(fc, truth, "member", method="fair",
                                                                     reduce_dims=list(space), weights=w)),
    }
    print(f"grid {grid}, {args.members} members, {args.leads} lead times, best of {args.repeat}")
    print(f"{'metric':<22}{'ours (s)':>10}{'scores (s)':>12}{'ratio':>8}")
    rows = []
    for name, (ours, theirs) in cases.items():
        t_ours, a = best_time(ours, args.repeat)
        t_theirs, b = best_time(theirs, args.repeat)
        np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=name)
        print(f"{name:<22}{t_ours:>10.3f}{t_theirs:>12.3f}{t_ours / t_theirs:>8.2f}")
        rows.append([name, 1e3 * t_ours, 1e3 * t_theirs, t_ours / t_theirs])
    title = f"Metrics on {grid}, {args.members} members, {args.leads} lead times"
    figures = {"grid": str(grid), "members": args.members, "leads": args.leads, "repeat": args.repeat,
               "tables": [table(title, ["metric", "ours (ms)", "scores (ms)", "ours / scores"], rows,
                                f"Best of {args.repeat} calls each; both agree to a relative 1e-6.")]}
    print(f"results: {write_results(args.results, 'verify', figures)}")


if __name__ == "__main__":
    main()
