"""Training throughput (samples/s) with 1 and 2 processes (``torchrun``, gloo on CPU, NCCL on GPU).

Not a test: run ``python benchmarks/training.py [--grid legendre-gauss:64x128] [--steps 20]
[--processes 1 2] [--results PATH]``. A shallow-water store is simulated once into a temporary
directory; each run trains the configured SFNO for ``--steps`` optimiser steps with the same
global batch, and the throughput is the one `forecast.train` logs (all steps, start-up
excluded). The throughputs go to ``--results`` (:mod:`forecast.results`).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path[:0] = [str(Path(__file__).parents[1]), str(Path(__file__).parents[1] / "tests")]
from forecast.results import add_results_option, table, write_results  # noqa: E402
from train_factories import make_swe_store, tiny_train_config  # noqa: E402

_RATE = re.compile(r"(\d+) steps in ([\d.]+) s \(([\d.]+) samples/s\)")


def run(nproc: int, config_file: Path) -> float:
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "FORECAST_PROGRESS": "0", "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
    proc = subprocess.run([str(torchrun), "--standalone", f"--nproc_per_node={nproc}", "-m", "forecast.train",
                           "--config", str(config_file)], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).parents[1])
    match = _RATE.search(proc.stderr)
    if proc.returncode or not match:
        raise RuntimeError(proc.stderr[-2000:])
    return float(match.group(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default="legendre-gauss:64x128")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--embed-dim", type=int, default=64)
    parser.add_argument("--architecture", default="sfno", choices=["sfno", "afno"])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="torchrun process counts")
    add_results_option(parser, "training")
    args = parser.parse_args()
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = make_swe_store(Path(tmp) / "store.zarr", grid=args.grid, n_times=args.steps * args.batch_size // 2 + 16)
        for nproc in args.processes:
            config = tiny_train_config(store, Path(tmp) / f"run{nproc}", args.architecture, batch_size=args.batch_size,
                                       max_steps=args.steps, epochs=100, val_fraction=0.05, device="auto",
                                       model={"embed_dim": args.embed_dim, "num_layers": 4, "scale_factor": 2})
            config_file = Path(tmp) / f"train{nproc}.yaml"
            config_file.write_text(yaml.safe_dump(config.model_dump()))
            rates[nproc] = run(nproc, config_file)
            print(f"{args.architecture} {args.grid} batch {args.batch_size}: {nproc} process(es): "
                  f"{rates[nproc]:.2f} samples/s", flush=True)
    first = rates[args.processes[0]]
    title = (f"Training throughput, {args.architecture} (embed_dim {args.embed_dim}, 4 layers) on {args.grid}, "
             f"global batch {args.batch_size}")
    rows = [[n, rate, rate / first] for n, rate in rates.items()]
    figures = {"architecture": args.architecture, "grid": args.grid, "steps": args.steps,
               "batch_size": args.batch_size, "embed_dim": args.embed_dim, "tables": [table(
                   title, ["processes", "samples/s", f"ratio to {args.processes[0]} process(es)"], rows,
                   f"{args.steps} optimiser steps under torchrun (gloo on CPU, NCCL on GPUs), "
                   "the rate forecast.train logs: "
                   "start-up excluded, validation (5 % of the times) and the last checkpoint included; "
                   "the cores are shared between the processes.")]}
    print(f"results: {write_results(args.results, 'training', figures)}")


if __name__ == "__main__":
    main()
