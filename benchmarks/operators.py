"""Neural-operator options of the SFNO trained for equal wall time, scored on the demo's validation window.

    python benchmarks/operators.py [--budget-s 330] [--options default shpe tucker cp t1]
        [--data-dir .skill-data] [--work-dir .operator-runs] [--inits 8] [--members 16]
        [--results docs/results/benchmarks/operators.json]

Each option is the demo's stochastic SFNO (``sfno-crps``: the ``sfno`` section of
``configs/demo.yaml`` plus noise, trained on the almost-fair CRPS) with one model option set
(``configs/models/sfno-*.yaml``):

* ``default``: the SFNO as it is (learned per-latitude position embedding, dense weights);
* ``shpe``: spherical-harmonic position encoding through a SIREN (grid-free);
* ``tucker``, ``cp``: factorised spectral weights at 0.1 of the dense parameters;
* ``t1``: transform-once blocks.

Equal wall time: each option's CRPS train step (batch, members and rollout steps of the demo)
is timed first, and its training is capped at ``--budget-s / step time`` optimiser steps per
model copy (``stochastic.models`` copies share the budget). The demo chain then trains, rolls
out (``--members`` members from ``--inits`` init times) and scores the validation window
against the perfect model (:mod:`benchmarks.skill`'s figures). Reported per option:
parameters, step time, training wall time, CRPS over the perfect model's and spread/skill at
24 and 72 h (per variable, with 90 % bootstrap intervals).

Zero-shot resolution transfer (``--transfer``, on by default): the ``shpe`` model trained on
the demo's 32x64 grid runs on a 64x128 store of the same record (the transforms rebuilt for
that grid at the trained truncation, :meth:`SFNO.set_grid`), beside a ``shpe`` model trained on
64x128 for the same budget; both scored on the 64x128 validation window.

A full run (``--budget-s 330``, the demo's own training time, 8 inits x 16 members) takes
about an hour on 2 quiet cores; ``--budget-s 10 --inits 2 --members 4`` is a smoke run.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from forecast.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from forecast.config import DemoConfig, ModelConfig, RolloutConfig, VerifyConfig  # noqa: E402
from forecast.demo import demo  # noqa: E402
from forecast.forcings import forcing_names  # noqa: E402
from forecast.losses import almost_fair_crps  # noqa: E402
from forecast.models import SFNO, build_model, count_parameters  # noqa: E402
from forecast.results import table, write_results  # noqa: E402
from forecast.rollout.engine import BlowUpError  # noqa: E402
from pipelines.config import load_config  # noqa: E402
from pipelines.grids import Grid  # noqa: E402

OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "shpe": {"pos_embed_kind": "spherical-harmonics", "sh_degree": 10, "sh_siren_layers": 2, "sh_siren_hidden": 64},
    "tucker": {"spectral_factorisation": "tucker", "spectral_rank": 0.1},
    "cp": {"spectral_factorisation": "cp", "spectral_rank": 0.1},
    "t1": {"transform_once": True},
}
LEADS = ("24", "72")
FINE_GRID = "legendre-gauss:64x128"


def option_config(config: DemoConfig, option: str, budget_s: float, step_s: float) -> DemoConfig:
    """The demo config of one option, its training capped at the budget's optimiser steps."""
    copies = config.stochastic.models
    steps = max(1, math.floor(budget_s / (step_s * copies)))
    sfno = ModelConfig.model_validate({**config.sfno.model_dump(), **OPTIONS[option]})
    train = config.train.model_copy(update={"max_steps": steps, "epochs": 1000 * copies})
    return config.model_copy(update={"sfno": sfno, "train": train, "workdir": str(Path(config.workdir) / option)})


def crps_step(config: DemoConfig, option: str, grid: Grid) -> tuple[Callable[[], None], int]:
    """One CRPS train step of the demo's stochastic SFNO with ``option`` (batch, members and
    rollout steps of the demo), and the model's parameter count."""
    model_config = ModelConfig.model_validate({**config.sfno.model_dump(), **OPTIONS[option],
                                               "noise_channels": config.stochastic.noise_channels})
    n_state, n_forcing = 4, len(forcing_names([]))
    model = build_model(model_config, grid, n_state, n_forcing)
    batch, members, steps = config.train.batch_size, config.stochastic.ensemble_members, config.stochastic.rollout_steps
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    state = torch.randn(batch * members, n_state, *grid.shape)
    forcings = torch.randn(batch * members, n_forcing, *grid.shape)
    target = torch.randn(batch, n_state, *grid.shape)
    generators = [torch.Generator().manual_seed(i) for i in range(batch * members)]

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        x, loss = state, torch.zeros(())
        for _ in range(steps):
            x = model(x, forcings, model.draw_noise(generators))
            loss = loss + almost_fair_crps(x.unflatten(0, (batch, members)), target).mean()
        loss.backward()
        opt.step()
    return step, count_parameters(model)


def calibrate(config: DemoConfig, options: list[str], grid: Grid, repeats: int = 5) -> dict[str, tuple[float, int]]:
    """Median seconds of each option's CRPS train step (timed interleaved, after one warm-up
    step each, so that the machine's load affects every option alike) and parameter counts."""
    steps = {option: crps_step(config, option, grid) for option in options}
    times: dict[str, list[float]] = {option: [] for option in options}
    for step, _ in steps.values():
        step()
    for _ in range(repeats):
        for option, (step, _) in steps.items():
            start = time.perf_counter()
            step()
            times[option].append(time.perf_counter() - start)
    return {option: (statistics.median(times[option]), steps[option][1]) for option in options}


def skill_rows(skill: dict, model: str = "sfno-crps") -> dict:
    """CRPS over the perfect model's and spread/skill (value, 5 %, 95 %) per variable at 24 and 72 h."""
    out: dict = {}
    for variable, per_lead in skill.get(model, {}).items():
        out[variable] = {lead: {"crps_vs_perfect": row.get("crps_vs_perfect"), "spread_skill": row.get("spread_skill")}
                         for lead, row in per_lead.items() if lead in LEADS}
    return out


def run_option(config: DemoConfig, option: str, grid: Grid, args: argparse.Namespace, data_dir: Path,
               step_s: float, params: int) -> dict:
    config = option_config(config, option, args.budget_s, step_s)
    print(f"{option} on {grid}: {params:,} parameters, CRPS step {1e3 * step_s:.0f} ms -> "
          f"{config.train.max_steps} steps x {config.stochastic.models} models", flush=True)
    run = {"option": option, "grid": str(grid), "model_config": OPTIONS[option], "parameters": params,
           "crps_step_ms": 1e3 * step_s, "max_steps_per_model": config.train.max_steps,
           "store": str(data_dir.resolve() / "data" / "swe.zarr"), "perfect_model": _perfect_model_path(data_dir, config)}
    try:
        result = demo(config, window="validation", data_dir=data_dir)
    except BlowUpError as exc:   # an undertrained model (a smoke run's budget): recorded, not fatal
        print(f"{option}: {exc}", flush=True)
        return {**run, "error": str(exc), "skill": {}, "checkpoints": []}
    figures = json.loads((result.workdir / "results.json").read_text())["figures"]
    return {**run, "train_wall_s": figures["timings"].get("train sfno-crps"), "skill": skill_rows(figures["skill"]),
            "checkpoints": [str(c) for c in result.checkpoints.get("sfno-crps", [])]}


def _perfect_model_path(data_dir: Path, config: DemoConfig) -> str:
    """The perfect-model ensemble the demo keeps in ``data_dir`` for the validation window
    (:func:`forecast.demo.demo` names it so when it reuses a data directory)."""
    return str(data_dir.resolve() / "forecasts" / f"perfect_model_validation_m{config.members}_s{config.seed}.zarr")


def transferred_checkpoint(path: Path, grid: Grid, out: Path) -> Path:
    """The checkpoint at ``path`` described for ``grid``: the same weights, the spectral truncation
    kept (``hard_thresholding_fraction`` rescaled); the SFNO is built for ``grid`` from it."""
    ckpt = load_checkpoint(path)
    if ckpt.static is not None and ckpt.static.size:
        raise ValueError("checkpoints with static fields carry them on their grid; not transferable here")
    config = ckpt.model_config
    old = build_model(config, ckpt.grid, len(ckpt.variables), len(forcing_names(ckpt.static_names)))
    assert isinstance(old, SFNO)
    h, w = (grid.nlat - 1) // config.scale_factor + 1, grid.nlon // config.scale_factor
    fraction = old.modes / min(h, w // 2)
    new_config = config.model_copy(update={"hard_thresholding_fraction": fraction * (1 + 1e-9)})
    new = build_model(new_config, grid, len(ckpt.variables), len(forcing_names(ckpt.static_names)))
    new.load_state_dict(ckpt.model_state)   # same shapes: a grid-free model
    ckpt.model_config, ckpt.grid, ckpt.power_spectrum = new_config, grid, None
    return save_checkpoint(out, ckpt)


def zero_shot(coarse: dict, fine: dict, config: DemoConfig, work: Path) -> dict:
    """Roll the coarse-grid models out on the fine store and score them as the demo does."""
    from forecast.demo import _model_rollout, demo_windows
    from forecast.rollout.run import rollout
    from forecast.verify.summary import skill_summary
    from forecast.verify.workflow import verify
    from pipelines.store import open_store

    grid = Grid.parse(fine["grid"])
    work.mkdir(parents=True, exist_ok=True)
    checkpoints = [transferred_checkpoint(Path(c), grid, work / f"model{k}.pt") for k, c in enumerate(coarse["checkpoints"])]
    windows = demo_windows(open_store(fine["store"]).times, config)
    forecast = rollout(RolloutConfig(
        checkpoints=[str(c) for c in checkpoints], initial=fine["store"],
        init_times=[t.isoformat() for t in windows.validation.inits], lead=f"{config.windows.lead_hours:g}h",
        members=config.members, conserve_global_mean=config.conserve_global_mean, seed=config.seed,
        out=str(work / "forecast.zarr"), overwrite=True, **_model_rollout(config, "sfno-crps")))
    scores = verify(VerifyConfig(forecast=str(forecast), truth=fine["store"], out=str(work / "scores.nc"),
                                 perfect_model=fine["perfect_model"]))
    summary = skill_summary(scores, [float(lead) for lead in LEADS])
    return {"option": "shpe", "trained_on": coarse["grid"], "run_on": fine["grid"],
            "checkpoints": [str(c) for c in checkpoints],
            "skill": {v: {f"{float(k):g}": {"crps_vs_perfect": row.get("crps_vs_perfect"),
                                            "spread_skill": row.get("spread_skill")} for k, row in per_lead.items()}
                      for v, per_lead in summary.items()}}


def _cell(run: dict, variable: str, lead: str, key: str) -> str:
    row = run.get("skill", {}).get(variable, {}).get(lead) or {}
    value = row.get(key)
    if not value:
        return "blew up" if run.get("error") else "n/a"
    return f"{value[0]:.2f} [{value[1]:.2f}, {value[2]:.2f}]"


def operator_tables(runs: dict[str, dict], transfer: dict, budget_s: float) -> list[dict[str, Any]]:
    """The docs' tables (:func:`forecast.results.table`): one row per option, gh and u at 24 and 72 h."""
    columns = ["option", "parameters", "CRPS step (ms)", "steps per copy"]
    columns += [f"{v} {lead} h {what}" for v in ("gh", "u") for lead in LEADS for what in ("CRPS / perfect", "spread/skill")]
    rows = [[option, run["parameters"], run["crps_step_ms"], run["max_steps_per_model"]]
            + [_cell(run, v, lead, key) for v in ("gh", "u") for lead in LEADS
               for key in ("crps_vs_perfect", "spread_skill")] for option, run in runs.items()]
    tables = [table(f"SFNO options trained for {budget_s:g} s each, validation window", columns, rows,
                    note="value [5 %, 95 %] of a bootstrap over init times; a model that blew up has no scores")]
    if transfer:
        trows = [[name, run.get("grid", run.get("run_on", "")), *[_cell(run, v, lead, "crps_vs_perfect")
                                                               for v in ("gh", "u") for lead in LEADS]]
                 for name, run in transfer.items()]
        tables.append(table(f"Resolution transfer: the shpe option on {FINE_GRID}",
                            ["model", "grid", *[f"{v} {lead} h CRPS / perfect" for v in ("gh", "u") for lead in LEADS]],
                            trows, note="zero_shot_from_coarse: trained on the demo grid, run on the fine one "
                                        "unchanged (SFNO.set_grid)"))
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-s", type=float, default=330.0, help="training wall time per option (s)")
    parser.add_argument("--options", nargs="+", choices=sorted(OPTIONS), default=list(OPTIONS))
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "demo.yaml")
    parser.add_argument("--data-dir", type=Path, default=REPO / ".skill-data")
    parser.add_argument("--work-dir", type=Path, default=REPO / ".operator-runs")
    parser.add_argument("--inits", type=int, default=None, help="validation init times (default: the demo's)")
    parser.add_argument("--members", type=int, default=None, help="ensemble members (default: the demo's)")
    parser.add_argument("--no-transfer", dest="transfer", action="store_false")
    parser.add_argument("--results", type=Path, default=REPO / "docs" / "results" / "benchmarks" / "operators.json")
    args = parser.parse_args()

    overrides = [f"workdir={args.work_dir}"]
    overrides += [f"windows.inits={args.inits}"] if args.inits else []
    overrides += [f"members={args.members}"] if args.members else []
    config = load_config(DemoConfig, args.config, overrides)
    config = config.model_copy(update={"models": ["sfno-crps"]})
    grid = Grid.parse(config.grid)
    data_dir = args.data_dir / f"swe-seed{config.swe.seed}"
    calibration = calibrate(config, args.options, grid)
    runs = {option: run_option(config, option, grid, args, data_dir, *calibration[option]) for option in args.options}
    transfer: dict = {}
    if args.transfer and runs.get("shpe", {}).get("checkpoints"):
        fine_config = config.model_copy(update={"grid": FINE_GRID, "workdir": str(args.work_dir / "fine")})
        fine_data = args.data_dir / f"swe-seed{config.swe.seed}-{FINE_GRID.split(':')[1]}"
        fine = run_option(fine_config, "shpe", Grid.parse(FINE_GRID), args, fine_data,
                          *calibrate(fine_config, ["shpe"], Grid.parse(FINE_GRID))["shpe"])
        transfer = {"trained_on_fine": fine}
        try:
            transfer["zero_shot_from_coarse"] = zero_shot(runs["shpe"], fine, fine_config, args.work_dir / "zero-shot")
        except BlowUpError as exc:
            transfer["zero_shot_from_coarse"] = {"error": str(exc)}
    figures = {"budget_s": args.budget_s, "window": "validation", "members": config.members,
               "inits": config.windows.inits, "options": runs, "resolution_transfer": transfer,
               "tables": operator_tables(runs, transfer, args.budget_s)}
    out = write_results(args.results, "operators", figures)
    print(f"results: {out}")
    for option, run in runs.items():
        print(f"{option:8s} params {run['parameters']:>9,}  step {run['crps_step_ms']:.0f} ms  " + "  ".join(
            f"{v} {lead} h CRPS/perfect {_first(row['crps_vs_perfect']):.2f} s/s {_first(row['spread_skill']):.2f}"
            for v, per_lead in run["skill"].items() if v == "gh" for lead, row in per_lead.items()))


def _first(value: Any) -> float:
    """The value of a (value, low, high) triple, NaN when absent."""
    return float(value[0]) if value else float("nan")


if __name__ == "__main__":
    main()
