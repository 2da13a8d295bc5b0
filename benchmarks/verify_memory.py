"""Peak memory of ``forecast verify`` against the number of init times (out-of-core goal).

Writes a truth store and two forecasts, with ``--inits`` and 4x ``--inits`` init times
(``--members`` members, ``--leads`` lead times, two variables on ``--grid``), then runs
``forecast verify`` on each in a fresh process and reads that process's own peak
resident memory (``VmHWM``). The goal is a ratio (4N / N) of at most 1.2: the scores
are accumulated over chunks of ``--init-chunk`` init times, so memory is set by the
chunk, not by the record. With ``--init-chunk 0`` every init time goes in one chunk
(what the verification did before), for comparison. Writes the peaks to ``--results``
(:mod:`forecast.results`).

    python benchmarks/verify_memory.py [--inits 8] [--members 16] [--grid legendre-gauss:64x128] [--results PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forecast.results import add_results_option, table, write_results  # noqa: E402
from pipelines.grids import Grid  # noqa: E402
from pipelines.store import write_store  # noqa: E402

STEP = pd.Timedelta(hours=6)
VARIABLES = {"gh": "m", "u": "m s-1"}

CHILD = """
import json, sys
from pathlib import Path
from forecast.config import VerifyConfig
from forecast.verify.workflow import verify
verify(VerifyConfig(forecast=sys.argv[1], truth=sys.argv[2], out=sys.argv[3], init_chunk=int(sys.argv[4])))
hwm = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM:"))
print(json.dumps({"peak_rss_mib": int(hwm.split()[1]) / 1024}))
"""


def make_truth(path: Path, grid: Grid, n_times: int) -> xr.Dataset:
    rng = np.random.default_rng(0)
    times = pd.date_range("2020-01-01", periods=n_times, freq=STEP)
    data = xr.Dataset({v: (("time", "lat", "lon"), rng.normal(10.0 * (i + 1), 2.0, (n_times, *grid.shape)).astype("f4"),
                           {"units": u}) for i, (v, u) in enumerate(VARIABLES.items())},
                      coords={"time": times, **grid.coords()},
                      attrs={"grid": str(grid), "variables": list(VARIABLES), "time_step_seconds": STEP.total_seconds()})
    stats = xr.Dataset({k: ("variable", np.ones(len(VARIABLES))) for k in ("mean", "std", "tendency_std")},
                       coords={"variable": list(VARIABLES)})
    clim = data.mean("time").expand_dims(dayofyear=np.arange(1, 367), hour=[0, 6, 12, 18]).astype("f4")
    write_store(path, data, stats, climatology=clim)
    return data


def make_forecast(path: Path, truth: xr.Dataset, grid: Grid, inits: int, members: int, leads: int) -> None:
    """Truth plus noise, written init time by init time (the writer's memory stays small too)."""
    init_times = pd.DatetimeIndex(truth["time"].values[:inits])
    lead_times = pd.timedelta_range(0, periods=leads, freq=STEP)
    shape = (members, inits, leads, *grid.shape)
    template = xr.Dataset({v: (("member", "init_time", "lead_time", "lat", "lon"),
                               dsa.zeros(shape, chunks=(members, 1, leads, *grid.shape), dtype="f4"), {"units": u})
                           for v, u in VARIABLES.items()},
                          coords={"member": np.arange(members), "init_time": init_times, "lead_time": lead_times,
                                  "valid_time": (("init_time", "lead_time"),
                                                 init_times.values[:, None] + lead_times.values[None, :]),
                                  **grid.coords()})
    template.to_zarr(path, mode="w", compute=False, zarr_format=3, consolidated=True)
    rng = np.random.default_rng(1)
    for i, t in enumerate(init_times):
        valid = t + lead_times
        block = xr.Dataset({v: (("member", "init_time", "lead_time", "lat", "lon"),
                                (truth[v].reindex(time=valid).values[None, None]
                                 + rng.normal(size=(members, 1, leads, *grid.shape))).astype("f4"))
                            for v in VARIABLES})
        block.to_zarr(path, region={"member": slice(None), "init_time": slice(i, i + 1), "lead_time": slice(None),
                                    "lat": slice(None), "lon": slice(None)})


def peak(forecast: Path, truth: Path, out: Path, init_chunk: int) -> float:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(forecast), str(truth), str(out), str(init_chunk)],
                          capture_output=True, text=True, check=True, cwd=REPO,
                          env={**os.environ, "FORECAST_PROGRESS": "0"})
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mib"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", type=int, default=8)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--leads", type=int, default=5)
    parser.add_argument("--grid", default="legendre-gauss:64x128")
    parser.add_argument("--init-chunk", type=int, default=8, help="0: all init times in one chunk")
    add_results_option(parser, "verify_memory")
    args = parser.parse_args(argv)
    grid = Grid.parse(args.grid)
    results: dict = {"grid": str(grid), "members": args.members, "leads": args.leads, "init_chunk": args.init_chunk}
    with tempfile.TemporaryDirectory(prefix="verify-memory-") as tmp:
        work = Path(tmp)
        truth = make_truth(work / "truth.zarr", grid, 4 * args.inits + args.leads)
        for n in (args.inits, 4 * args.inits):
            make_forecast(work / f"fc{n}.zarr", truth, grid, n, args.members, args.leads)
            chunk = args.init_chunk or n
            results[f"peak_rss_mib_{n}_inits"] = peak(work / f"fc{n}.zarr", work / "truth.zarr", work / f"s{n}.nc", chunk)
    n, n4 = (results[f"peak_rss_mib_{k}_inits"] for k in (args.inits, 4 * args.inits))
    results["ratio_4n_over_n"] = n4 / n
    print(json.dumps(results, indent=2))
    title = (f"Peak RSS of `forecast verify`, {args.members} members, {args.leads} lead times, 2 variables on {grid}, "
             f"init chunk {args.init_chunk or 'all'}")
    rows = [[args.inits, n, 1.0], [4 * args.inits, n4, n4 / n]]
    results["tables"] = [table(title, ["init times", "peak RSS (MiB)", "ratio to the smallest"], rows,
                               "One fresh process per run; its own peak resident memory (VmHWM).")]
    print(f"results: {write_results(args.results, 'verify_memory', results)}")
    return results


if __name__ == "__main__":
    main()
