"""Rollout benchmarks: batching gain, time outside the model, memory against lead time.

    python benchmarks/rollout.py [--device cuda] [--grid legendre-gauss:64x128] [--results PATH]

Measures, on a shallow-water initial state and an untrained SFNO (weights scaled down so
that it stays finite for the lengths used; speed does not depend on the weights):

1. member-steps per second of ``--members`` members batched through the model against a
   loop over members (``batch_members=1``), and their ratio (goal: >= 3x);
2. the fraction of a full rollout's wall time (streaming to Zarr, perturbations, forcings,
   blow-up checks) spent outside the model's forward passes (goal: < 10 %);
3. peak memory (host RSS, and CUDA allocations on a GPU) of rollouts of ``--memory-leads``
   lead times, each in a fresh process (goal: flat);
4. member-steps per second of the same rollout under ``torchrun`` with each of
   ``--processes`` (default 1 and 2; gloo on CPU, NCCL on GPUs), the rate the rollout logs
   (start-up excluded), and the ratio to one process.

Every figure goes to ``--results`` (:mod:`forecast.results`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forecast.checkpoint import Checkpoint, save_checkpoint  # noqa: E402
from forecast.config import ModelConfig, PerturbationConfig, RolloutConfig  # noqa: E402
from forecast.forcings import forcing_names  # noqa: E402
from forecast.models import build_model  # noqa: E402
from forecast.results import add_results_option, table, write_results  # noqa: E402
from forecast.rollout.plan import RolloutPlan  # noqa: E402
from forecast.rollout.run import initial_state, run_plan  # noqa: E402
from pipelines.grids import Grid  # noqa: E402
from pipelines.sources.swe import simulate_swe  # noqa: E402

INIT = "2020-01-01T06:00"


def make_inputs(workdir: Path, grid: Grid, model: ModelConfig, weight_scale: float) -> tuple[Path, Path]:
    """An ERA5-convention NetCDF of shallow-water states and an untrained checkpoint for it."""
    data = simulate_swe(grid, 12, start="2020-01-01T00:00")
    initial = workdir / "swe.nc"
    data.to_netcdf(initial)
    variables = list(data.data_vars)
    w = grid.latitude_weights
    values = np.stack([data[v].values for v in variables], axis=1).astype(np.float64)   # (T, C, H, W)
    mean = (values * w[:, None]).mean(axis=(0, 2, 3))
    std = np.sqrt((((values - mean[:, None, None]) ** 2) * w[:, None]).mean(axis=(0, 2, 3)))
    torch.manual_seed(0)
    net = build_model(model, grid, len(variables), len(forcing_names([])))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(weight_scale)
    ckpt = Checkpoint(model_config=model, train_config={}, grid=grid, variables=variables, static_names=[],
                      static=None, mean=mean, std=std, time_step_seconds=3600.0, step=0, epoch=0,
                      model_state=net.state_dict())
    return initial, save_checkpoint(workdir / "model.pt", ckpt)


def config(args: argparse.Namespace, initial: Path, ckpt: Path, out: Path, leads: int,
           batch_members: int | None = None) -> RolloutConfig:
    return RolloutConfig(checkpoints=[str(ckpt)], initial=str(initial), init_times=[INIT], lead=f"{leads}h",
                         members=args.members, batch_members=batch_members, seed=0, out=str(out), device=args.device,
                         perturbation=PerturbationConfig(kind=["spherical-gaussian"], amplitude=0.05,
                                                         length_scale_km=1000.0), bounds_std=1e6)


def seconds_per_advance(plan: RolloutPlan, state: torch.Tensor, steps: int) -> float:
    """Wall time of ``steps`` pure steps (no output)."""
    sync(plan.device)
    start = time.perf_counter()
    plan.engine.advance(state, plan.init_times[0], steps)
    sync(plan.device)
    return time.perf_counter() - start


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batching(args: argparse.Namespace, initial: Path, ckpt: Path, workdir: Path) -> dict:
    """Members x steps per second, batched and looped, best of ``--repeats`` interleaved runs
    (interleaving shares any background load between the two)."""
    plans = {name: RolloutPlan.build(config(args, initial, ckpt, workdir / "unused.zarr", args.steps, batch_members=b))
             for name, b in (("batched", None), ("looped", 1))}
    state = initial_state(plans["batched"], plans["batched"].init_times[0])
    best = {name: float("inf") for name in plans}
    for plan in plans.values():
        plan.engine.advance(state, plan.init_times[0], 2)      # warm-up (allocations, caches)
    for _ in range(args.repeats):
        for name, plan in plans.items():
            best[name] = min(best[name], seconds_per_advance(plan, state, args.steps))
    rates = {name: args.members * args.steps / seconds for name, seconds in best.items()}
    return {"member_steps_per_s_batched": rates["batched"], "member_steps_per_s_looped": rates["looped"],
            "batching_ratio": rates["batched"] / rates["looped"]}


def overhead(args: argparse.Namespace, initial: Path, ckpt: Path, workdir: Path) -> dict:
    """Full rollouts (output streamed to Zarr): wall time against time in the forward passes,
    for the run with the smallest outside fraction of ``--repeats``."""
    best: dict = {}
    for r in range(args.repeats):
        plan = RolloutPlan.build(config(args, initial, ckpt, workdir / f"overhead-{r}.zarr", args.steps))
        plan.engine.advance(initial_state(plan, plan.init_times[0]), plan.init_times[0], 2)   # warm-up
        plan.engine.forward_seconds = 0.0
        start = time.perf_counter()
        run_plan(plan)
        wall = time.perf_counter() - start
        forward = plan.engine.forward_seconds
        if not best or 1.0 - forward / wall < best["outside_forward_fraction"]:
            best = {"rollout_wall_s": wall, "forward_s": forward, "outside_forward_fraction": 1.0 - forward / wall,
                    "member_steps_per_s_with_output": args.members * args.steps / wall}
    return best


_RATE = re.compile(r"rollout: (\d+) member-steps in ([\d.]+) s \(([\d.]+) member-steps/s over (\d+) process")


def processes(args: argparse.Namespace, initial: Path, ckpt: Path, workdir: Path) -> dict:
    """The whole rollout command under ``torchrun`` with 1, 2, ... processes (two member blocks
    per init time, four init times, so that every count divides the work evenly)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    cfg = config(args, initial, ckpt, workdir / "unused.zarr", args.steps, batch_members=max(1, args.members // 2))
    rates = {}
    for n in args.processes:
        out = workdir / f"processes-{n}.zarr"
        run = cfg.model_copy(update={"out": str(out), "init_times": [INIT, "2020-01-01T07:00", "2020-01-01T08:00",
                                                                     "2020-01-01T09:00"]})
        config_file = workdir / f"processes-{n}.yaml"
        config_file.write_text(yaml.safe_dump(run.model_dump(mode="json")))
        threads = max(1, (os.cpu_count() or 1) // n)
        env = {**os.environ, "FORECAST_PROGRESS": "0", "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
        proc = subprocess.run([str(torchrun), "--standalone", f"--nproc_per_node={n}", "-m", "forecast.cli",
                               "rollout", "--config", str(config_file)], env=env, capture_output=True, text=True,
                              check=True)
        rates[n] = float(_RATE.search(proc.stderr).group(3))
    base = rates[args.processes[0]]
    return {"processes": {str(n): {"member_steps_per_s": r, "ratio_to_first": r / base} for n, r in rates.items()}}


def peak_rss_mib() -> float:
    """This process's own peak resident memory (``VmHWM``; ``ru_maxrss`` survives fork+exec,
    so a child would report its parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_child(args: argparse.Namespace) -> None:
    """(In a fresh process) one rollout of ``args.child_leads`` lead times; print the peaks as JSON."""
    workdir = Path(args.workdir)
    plan = RolloutPlan.build(config(args, workdir / "swe.nc", workdir / "model.pt",
                                    workdir / f"memory-{args.child_leads}.zarr", args.child_leads))
    run_plan(plan)
    peak_cuda = torch.cuda.max_memory_allocated() if plan.device.type == "cuda" else 0
    print(json.dumps({"leads": args.child_leads, "peak_rss_mib": peak_rss_mib(),
                      "peak_cuda_mib": peak_cuda / 2**20}))


def memory(args: argparse.Namespace, workdir: Path) -> list[dict]:
    results = []
    for leads in args.memory_leads:
        cmd = [sys.executable, __file__, "--child-leads", str(leads), "--workdir", str(workdir),
               *_passthrough(args)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def _passthrough(args: argparse.Namespace) -> list[str]:
    return ["--members", str(args.members), "--device", args.device, "--grid", args.grid,
            "--embed-dim", str(args.embed_dim), "--layers", str(args.layers)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--grid", default="legendre-gauss:32x64")
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10, help="steps for the throughput and overhead runs")
    parser.add_argument("--memory-leads", type=int, nargs="*", default=[10, 40])
    parser.add_argument("--embed-dim", type=int, default=32)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--weight-scale", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=3, help="timings are the best of this many runs")
    parser.add_argument("--processes", type=int, nargs="*", default=[1, 2], help="torchrun process counts")
    add_results_option(parser, "rollout")
    parser.add_argument("--child-leads", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.child_leads is not None:
        memory_child(args)
        return {}
    grid = Grid.parse(args.grid)
    model = ModelConfig(architecture="sfno", embed_dim=args.embed_dim, num_layers=args.layers, scale_factor=1)
    with tempfile.TemporaryDirectory(prefix="rollout-bench-") as tmp:
        workdir = Path(tmp)
        initial, ckpt = make_inputs(workdir, grid, model, args.weight_scale)
        results = {"device": args.device, "grid": str(grid), "members": args.members, "steps": args.steps,
                   "model": model.model_dump(), "torch_threads": torch.get_num_threads(),
                   **batching(args, initial, ckpt, workdir), **overhead(args, initial, ckpt, workdir),
                   "memory": memory(args, workdir), **processes(args, initial, ckpt, workdir)}
    print(json.dumps(results, indent=2))
    results["tables"] = tables(args, results)
    print(f"results: {write_results(args.results, 'rollout', results)}")
    return results


def tables(args: argparse.Namespace, results: dict) -> list[dict]:
    """The figures of :func:`main` as tables for the docs."""
    size = (f"{args.members} members, {args.steps} steps, SFNO embed_dim {args.embed_dim}, {args.layers} layers, "
            f"{results['grid']}, {args.device}")
    speed = table(f"Members batched through the model against a loop over members, {size}",
                  ["batched (member-steps/s)", "looped (member-steps/s)", "batched / looped"],
                  [[results["member_steps_per_s_batched"], results["member_steps_per_s_looped"],
                    results["batching_ratio"]]],
                  f"Pure model steps (no output), best of {args.repeats} interleaved runs after a warm-up.")
    outside = table(f"A full rollout (perturbations, forcings, checks, streaming to Zarr), {size}",
                    ["wall (s)", "in the forward passes (s)", "fraction outside the model", "member-steps/s"],
                    [[results["rollout_wall_s"], results["forward_s"], results["outside_forward_fraction"],
                      results["member_steps_per_s_with_output"]]],
                    f"The run with the smallest fraction outside the model of {args.repeats}.")
    peaks = table(f"Peak memory against lead time, {size}", ["lead times", "peak RSS (MiB)", "peak CUDA (MiB)"],
                  [[m["leads"], m["peak_rss_mib"], m["peak_cuda_mib"]] for m in results["memory"]],
                  "One fresh process per rollout; its own peak resident memory (VmHWM).")
    scaling = table(f"The rollout command under torchrun, {size}, four init times",
                    ["processes", "member-steps/s", "ratio to the first"],
                    [[int(n), p["member_steps_per_s"], p["ratio_to_first"]] for n, p in results["processes"].items()],
                    "The rate the rollout logs (start-up excluded); cores shared between the processes.")
    return [speed, outside, peaks, scaling]


if __name__ == "__main__":
    main()
