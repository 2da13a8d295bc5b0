"""The command line: --help everywhere, one-line errors with exit 2 on bad input."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from forecast.cli import app

COMMANDS = ["prepare", "train", "rollout", "verify", "plot", "run", "demo"]
TOOLS = ["export", "inspect"]   # work on one file: no config
runner = CliRunner()


def test_top_level_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS + TOOLS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--config" in result.output


def _run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "forecast.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_bad_config_key_is_a_one_line_error(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("store: x.zarr\nlearning_rate: 0.1\n")
    proc = _run_cli("train", "--config", str(config))
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {config}: unknown key 'learning_rate'"
    assert "Traceback" not in proc.stderr + proc.stdout


def test_bad_override_value_names_the_key(tmp_path):
    proc = _run_cli("rollout", "members=lots")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: command-line options: key 'members'")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_store_is_a_one_line_error_and_debug_shows_traceback(tmp_path):
    missing = tmp_path / "nope.zarr"
    proc = _run_cli("train", "--store", str(missing), f"out={tmp_path / 'run'}")
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = _run_cli("--debug", "train", "--store", str(missing), f"out={tmp_path / 'run'}")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_missing_config_file():
    proc = _run_cli("verify", "--config", "does/not/exist.yaml")
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr


@pytest.mark.parametrize("command", TOOLS)
def test_file_tools_have_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--help" in result.output and "Usage: forecast " + command in result.output
