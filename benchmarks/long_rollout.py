"""Long-rollout stability: does a trained model stay finite and keep the truth's spectrum?

    python benchmarks/long_rollout.py [--checkpoint demo/runs/sfno-crps/model0/checkpoints/latest.pt] \
        [--store demo/data/swe.zarr] [--steps 1000] [--every 50] [--variable gh] [--seeds 3] \
        [--spectral-cap 2] [--conserve gh vo] [--results PATH]

The defaults are the demo's first stochastic SFNO and its store (``forecast demo`` makes them).

Runs one unperturbed member for ``--steps`` model steps from the store's first time
(through the same ``forecast rollout`` workflow: streamed output, blow-up checks),
writing every ``--every``-th step. Then compares the global power spectrum of the
forecast (:mod:`forecast.verify.spectra`) per band of total wavenumber with the truth's
at the same valid time while the store has it, and beyond with the mean spectrum of the
store's last day (the unforced shallow-water flow decays, so its last day is the nearest
thing to the climate the model should settle into) or, with ``--reference climate``, over
every time the store holds (a statistically stationary flow: ``swe.stirring``), and prints
the ratios, the value range and the global (area) mean against the truth's.

A stochastic model's blow-up step is chaotic (one model, two noise seeds can last very
different numbers of steps), so ``--seeds N`` rolls it out with N noise seeds, prints the step
each one lasted and the spectra of the first; a deterministic model needs one.

A ratio near 1 in every band at every lead is stable and sharp; a falling high band is
blurring; a growing one is noise piling up at small scales (the usual road to blow-up).

No inference-time limiter is on unless asked for (``--spectral-cap``, ``--conserve``; the
checkpoint's own hyperdiffusion, if it was trained with one, is part of the model). The
results file (``--results``, :mod:`forecast.results`) holds the steps each seed completed,
the limiters, and the band ratios of seed 0 at every written lead; its tables show
``--table-leads`` of those leads.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forecast.checkpoint import load_model  # noqa: E402
from forecast.config import PerturbationConfig, RolloutConfig  # noqa: E402
from forecast.results import add_results_option, table, write_results  # noqa: E402
from forecast.rollout.engine import BlowUpError  # noqa: E402
from forecast.rollout.io import open_forecast, partial_path  # noqa: E402
from forecast.rollout import rollout  # noqa: E402
from forecast.verify.spectra import degree_bands, power_spectrum  # noqa: E402
from pipelines.store import open_store  # noqa: E402


def bands(truth_spectrum: np.ndarray) -> dict[str, slice]:
    """Low / middle / high thirds of the wavenumbers the truth resolves
    (:func:`forecast.verify.spectra.degree_bands`), and everything above them."""
    thirds = degree_bands(truth_spectrum)
    out = {f"l {a}-{b}": slice(a, b + 1) for a, b in thirds}
    resolved = thirds[-1][1] + 1
    if resolved < truth_spectrum.size:
        out[f"l>={resolved}*"] = slice(resolved, None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="demo/runs/sfno-crps/model0/checkpoints/latest.pt")
    parser.add_argument("--store", default="demo/data/swe.zarr")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--variable", default="gh")
    parser.add_argument("--seeds", type=int, default=1, help="noise seeds of a stochastic model (default 1)")
    parser.add_argument("--spectral-cap", type=float, default=None,
                        help="rollout spectral_cap: factor on the training data's power per degree (default: none)")
    parser.add_argument("--conserve", nargs="+", default=None, metavar="VARIABLE",
                        help="rollout conserve_global_mean: variables whose global mean stays at the initial state's")
    parser.add_argument("--reference", choices=("last-day", "climate"), default="last-day",
                        help="truth beyond the store's end: its last day (a decaying flow) or the mean over every "
                             "time it holds (a statistically stationary one, e.g. swe.stirring)")
    parser.add_argument("--dropout", type=float, default=None,
                        help="DYffusion: rollout dropout, the interpolator's rate at inference (default: as trained)")
    parser.add_argument("--member-dropout", type=float, default=None,
                        help="DYffusion: rollout member_dropout, masks each member keeps for the whole run (default: none)")
    parser.add_argument("--noise-amplitude", type=float, default=None,
                        help="a stochastic SFNO's noise factor at inference (rollout noise_amplitude; default 1)")
    parser.add_argument("--out", default=None, help="forecast outputs (default: a temporary directory)")
    parser.add_argument("--table-leads", type=int, default=6, help="written leads the docs table shows (evenly spaced)")
    add_results_option(parser, "long_rollout")
    args = parser.parse_args()
    for path in (args.checkpoint, args.store):
        if not Path(path).exists():
            parser.error(f"{path} does not exist (run `forecast demo` first, or pass --checkpoint and --store)")

    store = open_store(args.store)
    init = store.times[0]
    root = Path(args.out or tempfile.mkdtemp(prefix="long_rollout_"))
    model, ckpt = load_model(args.checkpoint)
    step_h, stochastic = ckpt.time_step_seconds / 3600.0, model.stochastic
    lasted, outputs = [], []
    for seed in range(args.seeds):
        out = root / f"long_seed{seed}.zarr"
        config = RolloutConfig(checkpoints=[args.checkpoint], initial=args.store, init_times=[init.isoformat()],
                               lead=f"{args.steps * step_h:g}h", members=1, seed=seed,
                               perturbation=PerturbationConfig(kind=["none"]), out=str(out),
                               output_every=args.every, overwrite=True, spectral_cap=args.spectral_cap,
                               conserve_global_mean=args.conserve, dropout=args.dropout,
                               member_dropout=args.member_dropout,
                               noise_amplitude=args.noise_amplitude)
        started = time.perf_counter()
        try:
            rollout(config)
            lasted.append(args.steps)
            print(f"seed {seed}: {args.steps} steps of {step_h:g} h ({args.steps * step_h / 24:.0f} days) from {init} "
                  f"in {time.perf_counter() - started:.1f} s: no blow-up (values stayed finite and inside the bounds)")
        except BlowUpError as exc:
            lasted.append(int(exc.step) - 1 if exc.step is not None else -1)
            print(f"seed {seed}: BLOW-UP after {time.perf_counter() - started:.1f} s: {exc}")
            out = partial_path(out)  # the complete lead times are kept there
        outputs.append(out)
        if not stochastic:
            break   # a deterministic model's rollout does not depend on the seed
    print(f"steps completed per seed: {lasted} (median {float(np.median(lasted)):g})")
    out = outputs[0]

    fc = open_forecast(out)[args.variable].isel(member=0, init_time=0).load()
    fc = fc.isel(lead_time=np.flatnonzero(np.isfinite(fc.values).all(axis=(1, 2))))
    truth = store.data[args.variable].load()
    truth_spectra = power_spectrum(truth)                                   # (time, wavenumber)
    if args.reference == "climate":
        reference_late = truth_spectra.mean("time").values
    else:
        last_day = truth_spectra.isel(time=slice(-max(1, round(24 * 3600 / store.time_step.total_seconds())), None))
        reference_late = last_day.mean("time").values
    band = bands(truth_spectra.mean("time").values)
    late = "last day" if args.reference == "last-day" else "times"
    print(f"\n{args.variable} (seed 0): forecast / truth power per band, the truth at the same valid time while the store "
          f"has it, else (marked ~) the mean of the store's {late}; *: power above the truth's truncation as a "
          f"fraction of the truth's total. Value range against the truth's "
          f"[{float(truth.min()):.5g}, {float(truth.max()):.5g}] {truth.attrs.get('units', '')}")
    weights = store.grid.area_weights()
    area_mean = lambda field: float(field.weighted(weights).mean(("lat", "lon")))   # noqa: E731
    truth_means = [area_mean(truth.isel(time=i)) for i in (0, -1)]
    print(f"global mean: the truth's {truth_means[0]:.6g} at the start, {truth_means[1]:.6g} at the end "
          f"(a conserved quantity's drift shows here, not in the spectra; rollout conserve_global_mean)")
    header = f"{'lead (h)':>9} {'step':>5}  " + " ".join(f"{name:>10}" for name in band) + \
             f" {'total':>7} {'min':>10} {'max':>10} {'mean':>10}"
    print(header)
    rows = []
    for i in range(fc.sizes["lead_time"]):
        field = fc.isel(lead_time=i)
        spec = power_spectrum(field).values
        lead = pd.Timedelta(fc["lead_time"].values[i])
        valid = init + lead
        same_time = valid in store.times
        ref = truth_spectra.sel(time=valid).values if same_time else reference_late
        ratios = [spec[b].sum() / (ref[b] if "*" not in name else ref[1:]).sum() for name, b in band.items()]
        lead_h = lead.total_seconds() / 3600
        total = spec[1:].sum() / ref[1:].sum()
        print(f"{lead_h:9.0f} {round(lead_h / step_h):5d} {' ' if same_time else '~'} " +
              " ".join(f"{r:10.3f}" for r in ratios) +
              f" {total:7.3f} {float(field.min()):10.5g} {float(field.max()):10.5g}"
              f" {area_mean(field):10.6g}")
        rows.append([lead_h, round(lead_h / step_h), "same time" if same_time else args.reference,
                     *map(float, ratios), float(total), float(field.min()), float(field.max()), area_mean(field)])
    limiters = {"spectral_cap": args.spectral_cap, "conserve_global_mean": args.conserve,
                "checkpoint hyperdiffusion_efold_hours": ckpt.model_config.hyperdiffusion_efold_hours}
    columns = ["lead (h)", "step", "truth", *band, "total", "min", "max", "global mean"]
    figures = {"checkpoint": str(args.checkpoint), "store": str(args.store), "variable": args.variable,
               "steps": args.steps, "step_hours": step_h, "stochastic": bool(stochastic), "limiters": limiters,
               "limited": any(v is not None for v in limiters.values()), "steps_completed": lasted,
               "inference": {"dropout": args.dropout, "member_dropout": args.member_dropout,
                             "noise_amplitude": args.noise_amplitude},
               "bands": {"columns": columns, "rows": rows},
               "tables": _tables(args, lasted, limiters, columns, rows)}
    print(f"results: {write_results(args.results, 'long_rollout', figures)}")


def _tables(args: argparse.Namespace, lasted: list[int], limiters: dict, columns: list[str],
            rows: list[list]) -> list[dict]:
    """Steps per seed, the limiters, and the band ratios of seed 0 at ``--table-leads`` evenly spaced leads."""
    seeds = table(f"Steps completed of {args.steps} ({Path(args.checkpoint).name}, one unperturbed member)",
                  ["seed", "steps completed", "blew up"], [[k, n, n < args.steps] for k, n in enumerate(lasted)],
                  "A run stops at the first step whose values leave the blow-up bounds.")
    used = table("Inference-time limiters", ["limiter", "setting"],
                 [[name, "off" if value is None else str(value)] for name, value in limiters.items()])
    shown = sorted({round(i) for i in np.linspace(0, len(rows) - 1, min(args.table_leads, len(rows)))}) if rows else []
    spectra = table(f"{args.variable}, seed 0: forecast / truth power per band of total wavenumber l", columns,
                    [rows[i] for i in shown],
                    "Truth at the same valid time while the store has it, else the mean of the store's "
                    f"{'last day' if args.reference == 'last-day' else 'times'}; l>=N*: power above the truth's "
                    "truncation as a fraction of the truth's total; min, max, global mean of the forecast field.")
    return [seeds, used, spectra]


if __name__ == "__main__":
    main()
