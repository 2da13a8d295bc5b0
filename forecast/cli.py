"""The ``forecast`` command line.

Every subcommand takes ``--config FILE`` (YAML from ``configs/``), options for the
common keys, and trailing ``key=value`` overrides (dotted for nested keys), applied in
that order. Bad input prints one line ``error: ...`` and exits with status 2; other
failures (an output locked by another run, a full disk, a blown-up forecast) exit 1. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from forecast.cli_checkpoint import checkpoint_app
from forecast.cli_errors import STATE, handle_errors
from forecast.cli_options import comma_list, duration, given_options, lead_hours, load_config_with
from pipelines.errors import InputError

log = logging.getLogger("forecast.cli")

app = typer.Typer(
    name="forecast",
    help="Machine-learning weather forecasting on the sphere: prepare data, train SFNO/AFNO models, "
         "roll out ensembles, verify and plot.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file (see configs/).", dir_okay=False)
OverridesArg = typer.Argument(None, help="KEY=VALUE overrides applied after the config file, e.g. lr=3e-4 model.embed_dim=32.",
                              show_default=False)


@app.callback()
def global_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings only, no progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
) -> None:
    """Machine-learning weather forecasting on the sphere."""
    from forecast.logging_setup import configure_logging

    STATE["debug"] = debug
    configure_logging(1 if verbose else (-1 if quiet else 0))


# The project's own configs/, found from the package (an editable install or a checkout), so
# that `forecast run` without --config does not depend on the current directory.
PROJECT_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


# --------------------------------------------------------------------------------------
@app.command()
@handle_errors
def prepare(
    config: Optional[Path] = ConfigOpt,
    source: Optional[str] = typer.Option(None, help="'files' (NetCDF/Zarr reanalysis) or 'swe' (embedded shallow-water generator)."),
    inputs: Optional[list[str]] = typer.Option(None, "--input", "-i", help="Input file, glob or Zarr store (repeatable)."),
    variables: Optional[str] = typer.Option(None, help="Comma list, e.g. z500,t850,t2m,u10,v10."),
    grid: Optional[str] = typer.Option(None, help="Target grid, e.g. legendre-gauss:64x128 or equiangular:181x360."),
    method: Optional[str] = typer.Option(None, help="Regridding: conservative, bilinear or spectral."),
    time_step: Optional[str] = typer.Option(None, "--time-step", help="Regular time step to select, e.g. 6h."),
    fill: Optional[str] = typer.Option(None, help="NaN policy: fail or nearest."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output Zarr store."),
    append: bool = typer.Option(False, "--append", help="Append new times to an existing store."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
    scheduler: Optional[str] = typer.Option(None, help="dask.distributed scheduler address (default: a LocalCluster)."),
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """Read reanalysis (or generate shallow-water data), regrid, compute statistics, write a training store."""
    from pipelines.config import PrepareConfig
    from pipelines.prepare import prepare as run_prepare

    options = given_options(source=source, inputs=inputs, variables=comma_list(variables, "--variables"), grid=grid,
                            method=method, time_step=time_step, fill=fill, out=out, append=append,
                            overwrite=overwrite, scheduler=scheduler)
    cfg = load_config_with(PrepareConfig, config, options, overrides)
    path = run_prepare(cfg, command=" ".join(sys.argv))
    typer.echo(f"store written: {path}")


@app.command()
@handle_errors
def train(
    config: Optional[Path] = ConfigOpt,
    store: Optional[str] = typer.Option(None, help="Training store written by `forecast prepare`."),
    model: Optional[Path] = typer.Option(None, help="Model config YAML (configs/models/*.yaml), replaces the `model` section."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Run directory (checkpoints, metrics)."),
    resume: bool = typer.Option(False, "--resume", help="Continue exactly from the run directory's latest checkpoint."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print parameter count and FLOPs per step, then exit."),
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """Train an SFNO, AFNO or Spherical DYffusion (one process, or many under torchrun with DDP)."""
    from forecast.config import TrainConfig
    from forecast.train import train as run_train
    from pipelines.config import read_yaml

    options = given_options(store=store, out=out)
    if model is not None:
        options += [f"model.{k}={v!r}" if isinstance(v, str) else f"model.{k}={v}" for k, v in read_yaml(model).items()]
    cfg = load_config_with(TrainConfig, config, options, overrides)
    result = run_train(cfg, resume=resume, dry_run=dry_run)
    if result is not None and not dry_run:
        typer.echo(f"checkpoint: {result.checkpoint}")


@app.command()
@handle_errors
def rollout(
    config: Optional[Path] = ConfigOpt,
    checkpoint: Optional[list[str]] = typer.Option(None, "--checkpoint", help="Checkpoint file (repeatable: members are spread over them)."),
    initial: Optional[str] = typer.Option(None, help="Initial conditions: a training store or ERA5-convention files."),
    init: Optional[str] = typer.Option(None, help="Init times, comma list of ISO times, e.g. 2020-01-01T00,2020-01-02T00."),
    lead: Optional[str] = typer.Option(None, help="Forecast length, e.g. 10d, 72h."),
    members: Optional[int] = typer.Option(None, help="Ensemble size."),
    perturbation: Optional[str] = typer.Option(None, help="Comma list: none, spherical-gaussian, data-spectrum, "
                                                          "bred-vector."),
    seed: Optional[int] = typer.Option(None, help="Seed: the same seed gives a bit-identical ensemble."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output .zarr or .nc."),
    output_grid: Optional[str] = typer.Option(None, "--output-grid", help="Regrid the output, e.g. equiangular:181x360."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an output made with other parameters."),
    batch_members: Optional[int] = typer.Option(None, "--batch-members",
                                                help="Members per forward pass and per work unit (fits a GPU; "
                                                     "units are spread over torchrun processes)."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda (under torchrun: the local rank's GPU)."),
    variables: Optional[str] = typer.Option(None, help="Variables to write, comma list (the model steps all)."),
    output_every: Optional[str] = typer.Option(None, "--output-every",
                                               help="Write every n-th step (3) or every duration (24h)."),
    intermediate: bool = typer.Option(False, "--intermediate",
                                      help="DYffusion: also write the interpolated states at every store step "
                                           "between model steps."),
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """Roll a model (or several) out autoregressively as an ensemble and stream CF output.

    Under `torchrun --nproc_per_node=N -m forecast.cli rollout ...` the (init time, member
    block) units are spread over the N processes, each writing its own chunks of the one
    output; the result is bit-identical to one process's.
    """
    from forecast.config import RolloutConfig
    from forecast.rollout import rollout as run_rollout

    options = given_options(checkpoints=checkpoint, initial=initial, init_times=comma_list(init, "--init"), lead=lead,
                            members=members, seed=seed, out=out, output_grid=output_grid, overwrite=overwrite,
                            batch_members=batch_members, device=device, variables=comma_list(variables, "--variables"),
                            output_every=int(output_every) if output_every and output_every.isdigit() else output_every,
                            intermediate=intermediate or None)
    if perturbation is not None:
        options.append(f"perturbation.kind={comma_list(perturbation, '--perturbation')}")
    cfg = load_config_with(RolloutConfig, config, options, overrides)
    path = run_rollout(cfg)
    typer.echo(f"forecast: {path}")


@app.command()
@handle_errors
def verify(
    config: Optional[Path] = ConfigOpt,
    forecast: Optional[str] = typer.Option(None, "--forecast", help="Forecast written by `forecast rollout`."),
    truth: Optional[str] = typer.Option(None, help="Truth: a training store or ERA5-convention files."),
    climatology: Optional[str] = typer.Option(None, help="Store whose climatology is used (default: the truth's)."),
    baselines: Optional[str] = typer.Option(None, help="Comma list: persistence, climatology."),
    perfect_model: Optional[str] = typer.Option(None, "--perfect-model",
                                                help="Perfect-model ensemble (`forecast perfect-model`) to score too."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output scores NetCDF."),
    metrics: Optional[str] = typer.Option(None, help="Comma list, e.g. rmse,acc,crps (default: all)."),
    regions: Optional[str] = typer.Option(None, help="Comma list: global, nh-extratropics, tropics, sh-extratropics."),
    init_chunk: Optional[int] = typer.Option(None, "--init-chunk", help="Init times scored at once (memory)."),
    scheduler: Optional[str] = typer.Option(None, help="dask.distributed scheduler address (default: threads)."),
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """Score a forecast against truth and baselines (RMSE, ACC, CRPS, spread/skill, ...)."""
    from forecast.config import VerifyConfig
    from forecast.verify.workflow import verify as run_verify

    options = given_options(forecast=forecast, truth=truth, climatology=climatology,
                            baselines=comma_list(baselines, "--baselines"), out=out, perfect_model=perfect_model,
                            metrics=comma_list(metrics, "--metrics"), regions=comma_list(regions, "--regions"),
                            init_chunk=init_chunk, scheduler=scheduler)
    cfg = load_config_with(VerifyConfig, config, options, overrides)
    path = run_verify(cfg)
    typer.echo(f"scores: {path}")


@app.command("perfect-model")
@handle_errors
def perfect_model(
    store: str = typer.Option(..., help="A store prepared from the stirred shallow-water source (--source swe)."),
    init: str = typer.Option(..., help="Init times, comma list of ISO times, e.g. 2020-02-10T00,2020-02-10T12."),
    lead: str = typer.Option("120h", help="Forecast length, e.g. 5d, 120h."),
    every: str = typer.Option("6h", "--every", help="Time between written lead times, e.g. 6h."),
    members: int = typer.Option(16, help="Ensemble size (as many as the forecast it is compared with)."),
    seed: int = typer.Option(0, help="Seed of the members' stirring."),
    out: str = typer.Option(..., "--out", "-o", help="Output .zarr or .nc, in the layout of `forecast rollout`."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
) -> None:
    """Run the perfect-model ensemble of the embedded data: the solver from the true states with
    stirring it does not know, the physical limit of skill (score it with `forecast verify --perfect-model`)."""
    import pandas as pd

    from forecast.rollout import parse_init_times, parse_lead
    from forecast.verify.perfect_model import perfect_model_forecast

    step = pd.Timedelta(lead_hours(every), unit="h")
    if step <= pd.Timedelta(0):
        raise InputError(f"--every {every!r} must be a positive duration")
    if members < 1:
        raise InputError(f"--members {members} must be at least 1")
    n = parse_lead(lead, step)
    path = perfect_model_forecast(store, parse_init_times([init]), pd.TimedeltaIndex([k * step for k in range(n + 1)]),
                                  members, out, seed=seed, overwrite=overwrite)
    typer.echo(f"perfect-model ensemble: {path}")


@app.command()
@handle_errors
def plot(
    config: Optional[Path] = ConfigOpt,
    forecast: Optional[str] = typer.Option(None, "--forecast", help="Forecast written by `forecast rollout` (maps)."),
    truth: Optional[str] = typer.Option(None, help="Truth store, for the truth and error panels of maps."),
    scores: Optional[str] = typer.Option(None, help="Scores written by `forecast verify` (skill curves, spread-skill, "
                                                    "rank histograms, spectra)."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output directory (default: plots)."),
    variable: Optional[str] = typer.Option(None, help="Variable to map (default: every variable)."),
    lead: Optional[str] = typer.Option(None, help="Lead times to map, comma list in hours or with units, e.g. 24,72 or 1d,3d."),
    member: Optional[int] = typer.Option(None, help="Ensemble member to map."),
    formats: Optional[str] = typer.Option(None, "--format", help="Comma list: png, pdf."),
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """Draw maps (forecast, truth, error), skill curves, spread-skill, rank histograms and spectra."""
    from forecast.config import PlotConfig
    from forecast.plots.workflow import plot_run

    leads = [lead_hours(x) for x in comma_list(lead, "--lead") or []] or None
    options = given_options(forecast=forecast, truth=truth, scores=scores, out=out, variable=variable,
                            lead_times_hours=leads, member=member, formats=comma_list(formats, "--format"))
    cfg = load_config_with(PlotConfig, config, options, overrides)
    if cfg.forecast is None and cfg.scores is None:
        raise InputError("nothing to plot: give --forecast (maps) and/or --scores (skill figures)")
    paths = plot_run(cfg.forecast, cfg.truth, cfg.scores, cfg.out, cfg)
    if not paths:
        raise InputError(f"nothing was plotted into {cfg.out}: the truth has no data at the requested valid times "
                         "and the scores no lead time with data")
    for path in paths:
        typer.echo(str(path))


@app.command()
@handle_errors
def export(
    forecast: Path = typer.Argument(..., help="A complete forecast written by `forecast rollout` (.zarr or .nc)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory for the exported files."),
    format: str = typer.Option("cdo", "--format", help="cdo: one NetCDF per init time and member, time first; "
                                                          "grib2: GRIB2 per init time (ensemble products)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Rewrite files that exist."),
    per_member: bool = typer.Option(False, "--per-member", help="grib2: one file per init time and member."),
    bits: int = typer.Option(16, "--bits", help="grib2: bits per packed value (error < field range / (2^bits - 1))."),
    packing: str = typer.Option("simple", "--packing", help="grib2: simple or ccsds (lossless on the packed values)."),
    centre: int = typer.Option(255, "--centre", help="grib2: originating centre, WMO code (255: missing)."),
    accumulation: Optional[str] = typer.Option(None, "--accumulation", help="grib2: period of accumulated "
                                               "variables (tp) before each step, e.g. 1h (default: since the "
                                               "previous output step)."),
) -> None:
    """Export a forecast for CDO, NCO and ncview (one CF NetCDF per init time and member) or as GRIB2."""
    from forecast.export import export_cdo
    from forecast.export_grib import export_grib, parse_packing
    from pipelines.outputs import check_output

    if format not in ("cdo", "grib2"):
        raise InputError(f"--format {format!r} is not known; use cdo or grib2")
    out = check_output(out, {"FORECAST": forecast}, "--out", "dir")
    if format == "cdo":
        if per_member or accumulation:
            raise InputError("--per-member and --accumulation apply to --format grib2")
        paths = export_cdo(forecast, out, overwrite=overwrite)
    else:
        paths = export_grib(forecast, out, per_member=per_member, bits=bits, packing=parse_packing(packing),
                            centre=centre, accumulation=duration(accumulation, "--accumulation"), overwrite=overwrite)
    typer.echo(f"{len(paths)} file(s) in {out}")


@app.command()
@handle_errors
def inspect(
    path: Path = typer.Argument(..., help="A store, checkpoint, forecast, scores file or any NetCDF/Zarr."),
) -> None:
    """Summarise a store, checkpoint, forecast or scores file in a few lines."""
    from forecast.inspect import inspect_path

    for line in inspect_path(path):
        typer.echo(line)


@app.command()
@handle_errors
def run(
    config: Path = typer.Option(PROJECT_CONFIGS / "operational.yaml", "--config", "-c",
                                help="Operational config YAML (default: the project's configs/operational.yaml).",
                                show_default=False),
    init: str = typer.Option("latest", help="Init time: 'latest' (the store's last time) or ISO, e.g. 2020-01-06T00."),
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """The scheduled job: append data, roll out, verify what can be verified, plot, summarise (idempotent)."""
    from forecast.config import RunConfig
    from forecast.operational import run as run_operational

    cfg = load_config_with(RunConfig, config, [], overrides)
    summary = run_operational(cfg, init=init)
    typer.echo(f"run directory: {summary.run_dir}")
    for stage, action in summary.actions.items():
        typer.echo(f"  {stage}: {action}")


@app.command()
@handle_errors
def demo(
    config: Optional[Path] = ConfigOpt,
    workdir: Optional[str] = typer.Option(None, help="Where the demo writes everything (default: ./demo)."),
    quick: bool = typer.Option(False, "--quick", help="Tiny grid and short run: checks the chain, scores say little."),
    models: Optional[str] = typer.Option(None, help="Comma list of models to train side by side: sfno-crps, sfno, afno, dyffusion."),
    overrides: Optional[list[str]] = OverridesArg,
) -> None:
    """Run the whole chain on the embedded shallow-water data and write a report (timings: README)."""
    from forecast.config import DemoConfig
    from forecast.demo import demo as run_demo

    cfg = load_config_with(DemoConfig, config, given_options(workdir=workdir, models=comma_list(models, "--models")),
                           overrides)
    result = run_demo(cfg, quick=quick)
    typer.echo(f"demo outputs in {result.workdir}")
    typer.echo(f"  report:  {result.report}")
    typer.echo(f"  store:   {result.store}")
    for arch in result.checkpoints:
        checkpoints = ", ".join(map(str, result.checkpoints[arch]))
        typer.echo(f"  {arch}: checkpoint(s) {checkpoints}, forecast {result.forecasts[arch]}, "
                   f"scores {result.scores[arch]}")
    typer.echo(f"  total time: {result.timings.get('total', 0):.0f} s")


app.add_typer(checkpoint_app, name="checkpoint")


def main(argv: Optional[list[str]] = None) -> int:
    """The ``forecast`` executable: the app, with usage errors as one ``error:`` line (exit 2).

    Click's usage errors (an unknown command or option, ``--members abc``, ``--config DIR``)
    would otherwise be a framed box; scheduled runs grep their logs for ``error:``.
    """
    usage_error = typer.BadParameter.__mro__[1]   # click's UsageError (typer vendors click)
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        result = app(args=args, prog_name="forecast", standalone_mode=False)
    except usage_error as exc:  # type: ignore[misc]  # a class found at run time (typer's click or click)
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(ctx.get_help() if ctx else "usage: forecast COMMAND --help")
            return 0
        path = ctx.command_path.split(" ", 1)[1:] if ctx else []
        typer.echo(f"error: {exc.format_message()} (see `forecast {path[0] + ' ' if path else ''}--help`)", err=True)
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        typer.echo("error: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
