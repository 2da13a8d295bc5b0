"""Benchmark of the reanalysis pipeline (synthetic ERA5-like 1 degree data, generated here).

Prints
1. peak RSS of ``prepare`` for N and 4N time steps and their ratio (goal <= 1.2);
2. conservative regrid throughput (MB/s of input) of the pipeline against calling
   xarray-regrid's conservative method directly on the same dask data (ratio, goal >= 1);
3. time and peak RSS to prepare ``--days`` days of 6-hourly 1 degree data for 5
   variables onto Legendre-Gauss 64x128 and 180x360 (``--days 365`` for the full year).

Every prepare runs in a fresh subprocess with dask's threaded scheduler so that its
peak RSS (``ru_maxrss`` of the child) is the whole pipeline's. The figures go to
``--results`` (:mod:`forecast.results`).

    python benchmarks/pipeline.py --steps 40 --days 30 [--results PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from forecast.results import add_results_option, table, write_results  # noqa: E402

VARIABLES = ["t2m", "msl", "u10", "v10", "z"]
REQUEST = ["t2m", "msl", "u10", "v10", "z500"]
SOURCE = "equiangular:181x360"


def write_source(directory: Path, steps: int, files: int) -> None:
    from factories import write_era5_like

    times = pd.date_range("2021-01-01", periods=steps, freq="6h")
    for i, chunk in enumerate(np.array_split(np.arange(steps), files)):
        write_era5_like(directory / f"part{i:03d}", SOURCE, times[chunk], VARIABLES, levels=(500,))


def run_prepare(inputs: str, out: Path, grid: str, workers: int | None = None) -> tuple[float, float]:
    """Run prepare in a child process; return (seconds, peak RSS in MiB of that child)."""
    code = ("import warnings; warnings.simplefilter('ignore');"
            "from pipelines.config import PrepareConfig; from pipelines.prepare import prepare;"
            f"prepare(PrepareConfig(inputs=[{inputs!r}], variables={REQUEST!r}, grid={grid!r}, out={str(out)!r},"
            " scheduler='threads'))")
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT,
                             env={"FORECAST_PROGRESS": "0", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not a max over all children
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"prepare failed with status {child.returncode}")
    seconds = time.perf_counter() - start
    peak = usage.ru_maxrss
    return seconds, peak / 1024.0


def memory_scaling(tmp: Path, steps: int) -> dict:
    results = {}
    for n in (steps, 4 * steps):
        src = tmp / f"mem{n}"
        write_source(src, n, files=max(1, n // 40))
        results[n] = run_prepare(str(src / "*/*.nc"), tmp / f"mem{n}.zarr", "legendre-gauss:64x128")
        print(f"prepare {n:5d} steps: {results[n][0]:7.1f} s, peak RSS {results[n][1]:7.0f} MiB")
    print(f"peak RSS ratio 4N/N = {results[4 * steps][1] / results[steps][1]:.2f} (goal <= 1.2)")
    rows = [[n, seconds, peak, peak / results[steps][1]] for n, (seconds, peak) in results.items()]
    return table(f"Memory of prepare against the record's length ({SOURCE} -> legendre-gauss:64x128, 5 fields)",
                 ["6-hourly steps", "seconds", "peak RSS (MiB)", "peak RSS / the smallest's"], rows,
                 "One fresh process per run (threaded dask scheduler); its own peak RSS.")


def regrid_throughput(steps: int) -> dict:
    import dask
    import xarray as xr
    import xarray_regrid  # noqa: F401 - registers the .regrid accessor

    from factories import make_era5_like
    from pipelines.grids import Grid, standardise_latlon
    from pipelines.regrid import regrid

    target = Grid.parse("legendre-gauss:64x128")
    ds = standardise_latlon(make_era5_like(SOURCE, pd.date_range("2021", periods=steps, freq="6h"), ["t2m", "msl"]))
    ds = ds.astype(np.float64).chunk({"time": 1}).persist()
    megabytes = ds.nbytes / 2**20
    target_ds = xr.Dataset(coords=target.coords())
    timings = {}
    with dask.config.set(scheduler="threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in (("pipeline", lambda: regrid(ds, target, "conservative")),
                         ("xarray-regrid", lambda: ds.regrid.conservative(target_ds, latitude_coord="lat",
                                                                          skipna=False))):
            fn().compute()  # warm up (weights, imports)
            start = time.perf_counter()
            fn().compute()
            timings[name] = megabytes / (time.perf_counter() - start)
            print(f"conservative regrid {name:14s}: {timings[name]:8.1f} MB/s of input ({megabytes:.0f} MB)")
    ratio = timings["pipeline"] / timings["xarray-regrid"]
    print(f"throughput ratio pipeline / xarray-regrid = {ratio:.2f} (goal >= 1.0)")
    title = f"Conservative regrid, {SOURCE} -> legendre-gauss:64x128, {steps} steps of 2 fields ({megabytes:.0f} MB)"
    return table(title, ["pipeline (MB/s)", "xarray-regrid (MB/s)", "pipeline / xarray-regrid"],
                 [[timings["pipeline"], timings["xarray-regrid"], ratio]],
                 "MB/s of float64 input, dask data chunked per time step, one timed call after a warm-up call each.")


def year_run(tmp: Path, days: int) -> dict:
    steps = days * 4
    src = tmp / "year"
    start = time.perf_counter()
    write_source(src, steps, files=max(1, days // 30))
    print(f"generated {days} days x 4 steps x 5 variables of 1 degree data in {time.perf_counter() - start:.0f} s")
    rows = []
    for grid in ("legendre-gauss:64x128", "legendre-gauss:180x360"):
        seconds, peak = run_prepare(str(src / "*/*.nc"), tmp / f"year_{grid.split(':')[1]}.zarr", grid)
        print(f"prepare {days} days -> {grid}: {seconds:.1f} s, peak RSS {peak:.0f} MiB")
        rows.append([grid, seconds, peak])
    return table(f"prepare of {days} days of 6-hourly {SOURCE} data, 5 fields",
                 ["target grid", "seconds", "peak RSS (MiB)"], rows,
                 "One fresh process per run (threaded dask scheduler): read, regrid, statistics, write.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="N for the memory-scaling run (4N also runs)")
    parser.add_argument("--regrid-steps", type=int, default=40)
    parser.add_argument("--days", type=int, default=365, help="days of 6-hourly data for the timing run")
    parser.add_argument("--tmp", default=None, help="scratch directory (default: a temporary one)")
    add_results_option(parser, "pipeline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tables = [memory_scaling(Path(tmp), args.steps), regrid_throughput(args.regrid_steps),
                  year_run(Path(tmp), args.days)]
    figures = {"steps": args.steps, "regrid_steps": args.regrid_steps, "days": args.days, "tables": tables}
    print(f"results: {write_results(args.results, 'pipeline', figures)}")


if __name__ == "__main__":
    main()
