"""``forecast checkpoint ...``: commands on checkpoint files.

``forecast checkpoint convert OLD NEW --trust`` rewrites a format-1 checkpoint (a pickle,
written before checkpoints became tensor files) in the current format. It is the one
command that unpickles, and it reads nothing without ``--trust`` (docs/trust.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from forecast.cli_errors import handle_errors

__all__ = ["checkpoint_app"]

checkpoint_app = typer.Typer(help="Checkpoint files: convert format-1 (pickle) checkpoints.", no_args_is_help=True)


@checkpoint_app.command("convert")
@handle_errors
def convert(
    old: Path = typer.Argument(..., help="A format-1 checkpoint (pickle) with its .sha256 beside it."),
    new: Path = typer.Argument(..., help="Where to write the converted checkpoint (and its .sha256)."),
    trust: bool = typer.Option(False, "--trust", help="State that you trust where OLD came from: unpickling it "
                                                      "runs any code it holds."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing NEW."),
) -> None:
    """Convert a checkpoint written by an earlier version (a pickle) to the current format,
    which loads without running code. Only for files whose origin you trust."""
    from forecast.checkpoint_legacy import convert_legacy

    path = convert_legacy(old, new, trust=trust, overwrite=overwrite)
    typer.echo(f"checkpoint: {path}")
