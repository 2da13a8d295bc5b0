"""Benchmark of GRIB ingest against NetCDF ingest of the same data (generated here).

The same ERA5-like fields (t2m, msl, u10, v10 and z at 500 hPa, 6-hourly, 1 degree by
default; the values of ``tests/factories.py``) are written three times: as NetCDF
(float32), as NetCDF4 compressed with zlib level 1, and as GRIB2 with several level types
per file (16-bit simple packing, as MARS ships it), split into files of
``--steps-per-file`` time steps. Prints

1. ingest throughput (open, select the variables, read every value: MB/s of float32
   data) of each NetCDF, of GRIB with a cold index cache (the first read of a file: ecCodes
   scans every message) and with a warm one (a later run), and the ratios NetCDF / GRIB
   (goal: GRIB within 1.5x, ratio <= 1.5);
2. ``prepare`` time (read, regrid to Legendre-Gauss 64x128, statistics, write) from each
   format and their ratio;
3. peak RSS of ``prepare`` from GRIB for N and 4N time steps and their ratio (goal <= 1.2:
   memory stays flat as the data grow, as for NetCDF in ``benchmarks/pipeline.py``).

Every measurement runs in a fresh subprocess (threaded dask scheduler; ``ru_maxrss`` of
that child); the files are read once beforehand so both formats start from the page cache.
Timings are of this machine at the time it runs: run it on a quiet machine, twice. The
figures go to ``--results`` (:mod:`forecast.results`).

    python benchmarks/grib_ingest.py --steps 160 --memory-steps 40 [--results PATH]
    python benchmarks/grib_ingest.py --grid equiangular:721x1440 --steps 16 --steps-per-file 8 --skip-prepare \\
        --memory-steps 0
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import REQUEST, ROOT, SOURCE, VARIABLES   # the data of benchmarks/pipeline.py (adds ROOT, tests/)

from forecast.results import add_results_option, table, write_results

READ = """
import time, warnings; warnings.simplefilter("ignore")
import dask
from pipelines.ingest import open_inputs
from pipelines.prepare import select
start = time.perf_counter()
with dask.config.set(scheduler="threads"):
    state = select(open_inputs([{inputs!r}])[0], {request!r})
    nbytes = sum(state[v].astype("float32").compute().nbytes for v in state.data_vars)
print(nbytes, time.perf_counter() - start)
"""

PREPARE = """
import warnings; warnings.simplefilter("ignore")
from pipelines.config import PrepareConfig; from pipelines.prepare import prepare
prepare(PrepareConfig(inputs=[{inputs!r}], variables={request!r}, grid="legendre-gauss:64x128", out={out!r},
                      scheduler="threads"))
"""


WRITE = """
import sys; sys.path[:0] = [{root!r}, {tests!r}, {benchmarks!r}]
from pathlib import Path
from grib_ingest import write_sources
write_sources(Path({directory!r}), {steps}, {steps_per_file}, {grid!r})
"""


def write_sources(directory: Path, steps: int, steps_per_file: int, grid: str) -> None:
    """The same fields as NetCDF (float32, and float32 with zlib level 1) and as GRIB2."""
    from factories import make_era5_like, write_era5_like
    from grib_factories import write_grib

    times = pd.date_range("2021-01-01", periods=steps, freq="6h")
    for i, part in enumerate(np.array_split(np.arange(steps), max(1, steps // steps_per_file))):
        write_era5_like(directory / "nc" / f"part{i:03d}", grid, times[part], VARIABLES, levels=(500,))
        write_grib(directory / "grib" / f"era5_{i:03d}.grib2", grid, times[part], VARIABLES, levels=(500,))
        ds = make_era5_like(grid, times[part], VARIABLES, levels=(500,))
        (directory / "zlib").mkdir(parents=True, exist_ok=True)
        ds.to_netcdf(directory / "zlib" / f"era5_{i:03d}.nc", encoding={v: {"zlib": True, "complevel": 1}
                                                                        for v in ds.data_vars})


def sources(directory: Path, steps: int, steps_per_file: int, grid: str) -> dict[str, str]:
    """Write the sources in a child process (this one stays small: a child's peak RSS counts the
    parent's pages at the fork) and read them once so every format starts from the page cache."""
    child(WRITE.format(root=str(ROOT), tests=str(ROOT / "tests"), benchmarks=str(ROOT / "benchmarks"),
                       directory=str(directory), steps=steps, steps_per_file=steps_per_file, grid=grid),
          directory / "cache")
    for path in directory.rglob("*.*"):
        if path.is_file():
            path.read_bytes()
    return {"NetCDF": str(directory / "nc" / "*" / "*.nc"), "NetCDF zlib": str(directory / "zlib" / "*.nc"),
            "GRIB": str(directory / "grib" / "*.grib2")}


def child(code: str, cache: Path) -> tuple[str, float, float]:
    """Run ``code`` in a fresh interpreter: (stdout, seconds, peak RSS in MiB of that child)."""
    env = {"FORECAST_PROGRESS": "0", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(cache),
           "HOME": os.environ.get("HOME", "/tmp")}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)   # this child's own rusage
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"benchmark child failed with status {os.waitstatus_to_exitcode(status)}")
    return out, time.perf_counter() - start, usage.ru_maxrss / 1024.0


def read_throughput(inputs: dict[str, str], tmp: Path, data: str) -> dict:
    rates, read = {}, {}
    runs = (("NetCDF", "NetCDF"), ("NetCDF zlib", "NetCDF zlib"), ("GRIB, cold index", "GRIB"),
            ("GRIB, warm index", "GRIB"))
    for label, source in runs:
        out, _, peak = child(READ.format(inputs=inputs[source], request=REQUEST), tmp / "cache-read")
        nbytes, seconds = (float(x) for x in out.split())
        rates[label] = nbytes / 2**20 / seconds
        print(f"ingest {label:17s}: {rates[label]:7.1f} MB/s ({nbytes / 2**20:.0f} MB in {seconds:.2f} s, "
              f"peak RSS {peak:.0f} MiB)")
        read[label] = (nbytes / 2**20, peak)
    for reference in ("NetCDF", "NetCDF zlib"):
        for label in ("GRIB, cold index", "GRIB, warm index"):
            print(f"throughput ratio {reference} / {label} = {rates[reference] / rates[label]:.2f} (goal <= 1.5)")
    rows = [[label, rate, rates["NetCDF"] / rate, rates["NetCDF zlib"] / rate, *read[label]]
            for label, rate in rates.items()]
    return table(f"Ingest throughput (open, select, read every value), {data}",
                 ["format", "MB/s", "NetCDF / this", "NetCDF zlib / this", "MB read", "peak RSS (MiB)"], rows,
                 "One fresh process per format, files in the page cache; MB/s of float32 data.")


def prepare_time(inputs: dict[str, str], tmp: Path) -> dict:
    seconds, peaks = {}, {}
    for label in ("NetCDF", "GRIB"):
        _, seconds[label], peaks[label] = child(PREPARE.format(inputs=inputs[label], request=REQUEST,
                                                               out=str(tmp / f"{label}.zarr")),
                                                tmp / f"cache-prepare-{label}")
        print(f"prepare from {label:6s}: {seconds[label]:6.1f} s (GRIB: cold index), peak RSS {peaks[label]:.0f} MiB")
    print(f"prepare time ratio GRIB / NetCDF = {seconds['GRIB'] / seconds['NetCDF']:.2f}")
    rows = [[label, seconds[label], seconds[label] / seconds["NetCDF"], peaks[label]] for label in seconds]
    return table("prepare (read, regrid to legendre-gauss:64x128, statistics, write)",
                 ["format", "seconds", "seconds / NetCDF's", "peak RSS (MiB)"], rows,
                 "One fresh process per format; GRIB with a cold index cache.")


def memory_scaling(tmp: Path, steps: int, steps_per_file: int, grid: str) -> dict:
    peaks, rows = {}, []
    for n in (steps, 4 * steps):
        grib = sources(tmp / f"mem{n}", n, steps_per_file, grid)["GRIB"]
        _, seconds, peaks[n] = child(PREPARE.format(inputs=grib, request=REQUEST, out=str(tmp / f"mem{n}.zarr")),
                                     tmp / f"cache-mem{n}")
        print(f"prepare from GRIB, {n:4d} steps: {seconds:6.1f} s, peak RSS {peaks[n]:6.0f} MiB")
        rows.append([n, seconds, peaks[n], peaks[n] / peaks[steps]])
    print(f"peak RSS ratio 4N/N = {peaks[4 * steps] / peaks[steps]:.2f} (goal <= 1.2)")
    return table("Memory of prepare from GRIB against the record's length",
                 ["6-hourly steps", "seconds", "peak RSS (MiB)", "peak RSS / the smallest's"], rows,
                 "One fresh process per run; its own peak RSS.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=160, help="6-hourly steps for the throughput runs")
    parser.add_argument("--memory-steps", type=int, default=40, help="N for the memory-scaling run (4N also runs; "
                                                                     "0 skips it)")
    parser.add_argument("--steps-per-file", type=int, default=40, help="time steps per file (every format)")
    parser.add_argument("--grid", default=SOURCE, help="source grid, e.g. equiangular:721x1440 for ERA5's 0.25 deg")
    parser.add_argument("--skip-prepare", action="store_true", help="only the ingest throughput")
    parser.add_argument("--tmp", default=None, help="scratch directory (default: a temporary one)")
    add_results_option(parser, "grib_ingest")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        inputs = sources(Path(tmp) / "data", args.steps, args.steps_per_file, args.grid)
        data = f"{args.steps} steps x {len(REQUEST)} fields on {args.grid}, {args.steps_per_file} steps per file"
        print(data)
        tables = [read_throughput(inputs, Path(tmp), data)]
        if not args.skip_prepare:
            tables.append(prepare_time(inputs, Path(tmp)))
        if args.memory_steps:
            tables.append(memory_scaling(Path(tmp), args.memory_steps, args.steps_per_file, args.grid))
    figures = {"steps": args.steps, "memory_steps": args.memory_steps, "steps_per_file": args.steps_per_file,
               "grid": args.grid, "tables": tables}
    print(f"results: {write_results(args.results, 'grib_ingest', figures)}")


if __name__ == "__main__":
    main()
