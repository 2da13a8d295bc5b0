"""No file we read can run code.

Crafted checkpoints, each with a freshly computed, valid ``.sha256`` beside it, go through
every command that reads a checkpoint (``inspect``, ``rollout``, ``train --resume``,
``run``, ``checkpoint convert`` without ``--trust``): each exits 2 with one ``error:`` line
and the payload, which writes a marker file when unpickled, never runs. A control shows
the payloads do run when unpickled, so the tests can fail. Format-1 checkpoints convert
with ``--trust`` only; the tensor files themselves round-trip every type a checkpoint holds.
"""

from __future__ import annotations

import hashlib
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from rollout_factories import make_checkpoint, make_swe_store

from forecast.checkpoint import checksum_path, load_checkpoint
from forecast.cli import main
from forecast.tensorfile import TreeFormatError, is_safetensors, read_tree, write_tree


class Payload:
    """Unpickling this object creates the file ``marker`` (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def with_sidecar(path: Path) -> Path:
    """``path`` with a valid ``.sha256`` beside it, as anyone who writes a file can make."""
    checksum_path(path).write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    return path


def legacy_payload(ckpt: Path) -> dict:
    """The dict a format-1 checkpoint pickled (the current content, format_version 1)."""
    payload = load_checkpoint(ckpt).to_payload()
    payload["format_version"] = 1
    payload["rng_state"] = [{"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}]
    return payload


def craft(root: Path, ckpt: Path, marker: Path) -> dict[str, Path]:
    """A real checkpoint with one field replaced by a payload (a torch.save zip), a bare payload
    (torch.save) and a bare payload as a raw pickle, each with a valid sidecar."""
    field = dict(legacy_payload(ckpt), train_config=Payload(marker))
    torch.save(field, root / "field.pt")
    torch.save(Payload(marker), root / "bare.pt")
    (root / "raw.pt").write_bytes(pickle.dumps(Payload(marker)))
    return {name: with_sidecar(root / f"{name}.pt") for name in ("field", "bare", "raw")}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("trust")
    store = make_swe_store(root / "store.zarr", n_times=24)
    ckpt = make_checkpoint(root / "model.pt", store)
    legacy = root / "legacy.pt"
    torch.save(legacy_payload(ckpt), legacy)
    return {"root": root, "store": store, "ckpt": ckpt, "legacy": with_sidecar(legacy), "marker": root / "MARKER",
            "crafted": craft(root, ckpt, root / "MARKER")}


def test_the_payloads_run_code_when_unpickled(made, tmp_path):
    """The control: the same files, unpickled, do write their marker."""
    marker = tmp_path / "CONTROL"
    for path in craft(tmp_path, made["ckpt"], marker).values():
        marker.unlink(missing_ok=True)
        torch.load(path, weights_only=False) if path.name != "raw.pt" else pickle.loads(path.read_bytes())
        assert marker.exists()


def _train_resume(path: Path, p: dict) -> list[str]:
    run = p["root"] / f"run-{path.stem}"
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    shutil.copy(path, run / "checkpoints" / "latest.pt")
    with_sidecar(run / "checkpoints" / "latest.pt")
    return ["train", "--store", str(p["store"]), "--out", str(run), "--resume"]


def _run(path: Path, p: dict) -> list[str]:
    config = p["root"] / f"op-{path.stem}.yaml"
    config.write_text(yaml.safe_dump({"out": str(p["root"] / f"op-{path.stem}"), "store": str(p["store"]),
                                      "rollout": {"checkpoints": [str(path)], "lead": "2h", "members": 2}}))
    return ["run", "--config", str(config), "--init", "2020-03-20T02"]


COMMANDS = {
    "inspect": lambda path, p: ["inspect", str(path)],
    "rollout": lambda path, p: ["rollout", "--checkpoint", str(path), "--initial", str(p["store"]), "--init",
                                "2020-03-20T02", "--lead", "2h", "--out", str(p["root"] / f"fc-{path.stem}.zarr")],
    "train-resume": _train_resume,
    "run": _run,
    "convert": lambda path, p: ["checkpoint", "convert", str(path), str(p["root"] / f"new-{path.stem}.pt")],
}


@pytest.mark.parametrize("crafted", ["field", "bare", "raw"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_crafted_checkpoint_runs_no_code_in_any_command(made, capfd, command, crafted):
    path = made["crafted"][crafted]
    status = main(COMMANDS[command](path, made))
    _, err = capfd.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert not made["marker"].exists()
    assert status == 2 and len(errors) == 1 and "Traceback" not in err, err[-3000:]
    expected = "--trust only if you trust" if command == "convert" else "forecast checkpoint convert"
    named = "latest.pt" if command == "train-resume" else path.name   # the file the command read
    assert expected in errors[0] and named in errors[0], errors[0]


def test_convert_with_trust_gives_a_checkpoint_that_loads_without_pickle(made, tmp_path, capfd):
    new = tmp_path / "converted.pt"
    assert main(["checkpoint", "convert", str(made["legacy"]), str(new), "--trust"]) == 0
    assert is_safetensors(new) and checksum_path(new).exists()
    converted, original = load_checkpoint(new), load_checkpoint(made["ckpt"])
    assert converted.model_config == original.model_config and converted.variables == original.variables
    for name, value in original.model_state.items():
        torch.testing.assert_close(converted.model_state[name], value, rtol=0, atol=0)
    np.testing.assert_array_equal(converted.mean, original.mean)
    python_state = converted.rng_state[0]["python"]
    random.setstate(python_state)   # the RNG states come back in the types their setters take
    np.random.set_state(converted.rng_state[0]["numpy"])
    assert main(["inspect", str(new)]) == 0
    refusals = {(str(made["legacy"]), str(made["legacy"])): "is the input OLD",
                (str(made["legacy"]), str(new)): "already exists; pass --overwrite",
                (str(new), str(tmp_path / "again.pt")): "already in the current format"}
    for (old, target), message in refusals.items():
        capfd.readouterr()
        assert main(["checkpoint", "convert", old, target, "--trust"]) == 2
        assert message in capfd.readouterr().err
    assert main(["checkpoint", "convert", str(made["legacy"]), str(new), "--trust", "--overwrite"]) == 0


def test_tensor_files_round_trip_every_type_a_checkpoint_holds(tmp_path):
    weight = torch.randn(3, 4)
    tree = {"model": {"w": weight, "w_view": weight[0], "step": torch.tensor(7.0)}, "ints": {0: {"m": torch.ones(2)}},
            "betas": (0.9, 0.999), "numpy": ("MT19937", np.arange(5, dtype=np.uint32), 3, 0, 0.0),
            "mean": np.linspace(0, 1, 4), "none": None, "flags": [True, "x", 2**40, float("inf")]}
    write_tree(tmp_path / "t.st", tree, "test tree")
    back = read_tree(tmp_path / "t.st", "test tree")
    torch.testing.assert_close(back["model"]["w_view"], weight[0], rtol=0, atol=0)
    assert back["ints"][0]["m"].tolist() == [1.0, 1.0] and back["betas"] == (0.9, 0.999)
    assert back["numpy"][1].dtype == np.uint32 and back["numpy"][0] == "MT19937" and isinstance(back["numpy"], tuple)
    assert back["mean"].dtype == np.float64 and back["flags"] == [True, "x", 2**40, float("inf")]
    with pytest.raises(TreeFormatError, match="not a checkpoint"):
        read_tree(tmp_path / "t.st", "checkpoint")
    with pytest.raises(TypeError, match="without pickle"):
        write_tree(tmp_path / "o.st", {"f": Payload(tmp_path / "x")}, "test tree")


def test_a_malformed_tensor_file_with_a_valid_checksum_is_one_line(made, tmp_path, capfd):
    """A safetensors file that names a tensor it does not hold, and one of another kind."""
    from safetensors.torch import save_file

    path = tmp_path / "dangling.pt"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"kind": "sphere-forecast checkpoint",
                                                         "tree": '{"format_version": {"__tensor__": "gone"}}'})
    with_sidecar(path)
    other = tmp_path / "other.pt"
    write_tree(other, {"state": torch.zeros(1)}, "sphere-forecast rollout unit state")
    with_sidecar(other)
    for bad in (path, other):
        capfd.readouterr()
        assert main(["inspect", str(bad)]) == 2
        errors = [line for line in capfd.readouterr().err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "truncated or corrupt" in errors[0] and bad.name in errors[0], errors
