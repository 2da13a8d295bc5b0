"""A catalogue of bad inputs across every command and config file.

Each case runs the ``forecast`` command line (:func:`forecast.cli.main`, what the
executable runs) and asserts its exit code (2: bad input) and that stderr holds exactly
one ``error:`` line naming the culprit (key, file, option or value), with no traceback.
Small real inputs (a store, a checkpoint, a forecast, NetCDF files) are made once.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from factories import write_era5_like
from rollout_factories import make_checkpoint, make_swe_store, rollout_config

from forecast.cli import main
from forecast.rollout import rollout
from pipelines.grids import Grid


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_inputs")
    store = make_swe_store(root / "store.zarr", n_times=24)
    ckpt = make_checkpoint(root / "model.pt", store)
    forecast = rollout(rollout_config([ckpt], store, root / "fc.zarr", lead="3h", members=2))
    corrupt = root / "corrupt.pt"
    shutil.copy(ckpt, corrupt)
    shutil.copy(ckpt.with_name(ckpt.name + ".sha256"), corrupt.with_name("corrupt.pt.sha256"))
    with open(corrupt, "r+b") as f:
        f.seek(100)
        f.write(b"\x00" * 64)
    run_dir = root / "run" / "checkpoints"            # a training run to resume with another model
    run_dir.mkdir(parents=True)
    make_checkpoint(run_dir / "latest.pt", store)
    write_era5_like(root / "era5", Grid.parse("equiangular:19x36"), __import__("pandas").date_range(
        "2020-01-01", periods=4, freq="6h"), ["t2m", "z"])
    (root / "garbage.nc").write_bytes(b"not a NetCDF file at all")
    (root / "bad.yaml").write_text("lead: [unclosed\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    (root / "empty_dir").mkdir()
    (root / "binary.yaml").write_bytes(bytes(range(128, 256)))
    (root / "dangling.zarr").symlink_to(root / "nowhere" / "fc.zarr")
    (root / "locked.zarr.lock").symlink_to(root / "nowhere" / "lock")
    fc_nc = rollout(rollout_config([ckpt], store, root / "fc.nc", lead="3h", members=2))
    return {"root": root, "store": store, "ckpt": ckpt, "fc": forecast, "corrupt": corrupt, "era5": root / "era5",
            "run": root / "run", "fc_nc": fc_nc, "nan_store": nan_store(store, root / "nan.zarr"),
            "misfit": misfit_checkpoint(ckpt, root / "misfit.pt"), "legacy": legacy_checkpoint(ckpt, root / "legacy.pt")}


def nan_store(store: Path, path: Path) -> Path:
    """A copy of ``store`` whose ``gh`` is NaN at 2020-03-20T02 (one grid point)."""
    import zarr

    shutil.copytree(store, path)
    array = zarr.open_group(str(path), mode="r+")["gh"]
    array[2, 0, 0] = float("nan")
    return path


def misfit_checkpoint(ckpt: Path, path: Path) -> Path:
    """A checkpoint whose weights do not fit its config (embed_dim changed, weights kept)."""
    from forecast.checkpoint import load_checkpoint, save_checkpoint

    loaded = load_checkpoint(ckpt)
    loaded.model_config = loaded.model_config.model_copy(update={"embed_dim": 12})
    return save_checkpoint(path, loaded)


def legacy_checkpoint(ckpt: Path, path: Path) -> Path:
    """A format-1 checkpoint: the payload pickled by torch.save, with its sidecar."""
    import hashlib

    import torch

    from forecast.checkpoint import checksum_path, load_checkpoint

    torch.save({**load_checkpoint(ckpt).to_payload(), "format_version": 1}, path)
    checksum_path(path).write_text(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n")
    return path


def _rollout(p: dict, *options: str, checkpoint: str = "ckpt", initial: str = "store", out: str = "o.zarr") -> list[str]:
    """``forecast rollout`` of the catalogue's checkpoint on its store, with ``options``."""
    return ["rollout", "--checkpoint", str(p[checkpoint]), "--initial", str(p[initial]), "--init", "2020-03-20T02",
            "--out", str(p["root"] / out), *options]


def _op_config(p: dict, name: str, **content) -> str:
    return config_file(p["root"], name, {"store": str(p["store"]), "rollout": {"checkpoints": [str(p["ckpt"])],
                                         "lead": "2h", "members": 2}, **content})


def config_file(root: Path, name: str, content: dict) -> str:
    path = root / name
    path.write_text(yaml.safe_dump(content))
    return str(path)


# (id, argv builder, expected exit code, text the error line must contain)
CASES = [
    # -- the command line itself --------------------------------------------------------------
    ("unknown-command", lambda p: ["forcast"], 2, "No such command 'forcast'"),
    ("unknown-option", lambda p: ["rollout", "--membres", "3"], 2, "--membres"),
    ("members-not-int", lambda p: ["rollout", "--members", "abc"], 2, "'--members'"),
    ("config-is-dir", lambda p: ["rollout", "--config", str(p["root"])], 2, "is a directory"),
    ("config-missing", lambda p: ["train", "--config", str(p["root"] / "nope.yaml")], 2, "nope.yaml does not exist"),
    ("config-bad-yaml", lambda p: ["rollout", "--config", str(p["root"] / "bad.yaml")], 2, "bad.yaml is not valid YAML"),
    ("config-not-mapping", lambda p: ["verify", "--config", str(p["root"] / "list.yaml")], 2, "list.yaml must hold a mapping"),
    ("override-malformed", lambda p: ["rollout", "members=[1,"], 2, "override 'members=[1,'"),
    ("override-no-equals", lambda p: ["rollout", "members"], 2, "override 'members' is not KEY=VALUE"),
    ("override-unknown-key", lambda p: ["rollout", "memebrs=3"], 2, "unknown key 'memebrs'"),
    # -- configs/train.yaml and train -----------------------------------------------------------
    ("train-unknown-key", lambda p: ["train", "--config", config_file(p["root"], "t1.yaml", {"learning_rate": 0.1})],
     2, "t1.yaml: unknown key 'learning_rate'"),
    ("train-batch-size-0", lambda p: ["train", "--store", str(p["store"]), "batch_size=0"], 2, "key 'batch_size'"),
    ("train-epochs-negative", lambda p: ["train", "--store", str(p["store"]), "epochs=-1"], 2, "key 'epochs'"),
    ("train-lr-zero", lambda p: ["train", "--store", str(p["store"]), "lr=0"], 2, "key 'lr'"),
    ("train-rollout-steps-0", lambda p: ["train", "--store", str(p["store"]), "rollout_steps=0"], 2, "key 'rollout_steps'"),
    ("train-architecture", lambda p: ["train", "--store", str(p["store"]), "model.architecture=unet"], 2,
     "key 'model.architecture'"),
    ("train-embed-dim-0", lambda p: ["train", "--store", str(p["store"]), "model.embed_dim=0"], 2, "key 'model.embed_dim'"),
    ("train-patch-size", lambda p: ["train", "--store", str(p["store"]), "model.patch_size=[4]"], 2, "key 'model.patch_size'"),
    ("train-store-missing", lambda p: ["train", "--store", str(p["root"] / "none.zarr"), f"out={p['root'] / 'r1'}"], 2,
     "none.zarr"),
    ("train-resume-other-model", lambda p: ["train", "--store", str(p["store"]), "--out", str(p["run"]), "--resume",
                                            "model.embed_dim=16"], 2, "model.embed_dim: 8 -> 16"),
    ("train-model-file-missing", lambda p: ["train", "--model", str(p["root"] / "nomodel.yaml")], 2, "nomodel.yaml"),
    # -- configs/rollout.yaml and rollout -------------------------------------------------------
    ("rollout-members-0", lambda p: ["rollout", "--members", "0"], 2, "key 'members'"),
    ("rollout-checkpoint-dir", lambda p: ["rollout", "--checkpoint", str(p["root"] / "run" / "checkpoints"),
                                          "--initial", str(p["store"]), "--init", "2020-03-20T02",
                                          "--out", str(p["root"] / "o1.zarr")], 2, "is a directory; pass a checkpoint file"),
    ("rollout-checkpoint-missing", lambda p: ["rollout", "--checkpoint", str(p["root"] / "no.pt"), "--initial",
                                              str(p["store"]), "--init", "2020-03-20T02", "--out",
                                              str(p["root"] / "o2.zarr")], 2, "no.pt does not exist"),
    ("rollout-checkpoint-corrupt", lambda p: ["rollout", "--checkpoint", str(p["corrupt"]), "--initial", str(p["store"]),
                                              "--init", "2020-03-20T02", "--out", str(p["root"] / "o3.zarr")], 2,
     "corrupt.pt is truncated or corrupt"),
    ("rollout-lead-unparsable", lambda p: ["rollout", "--checkpoint", str(p["ckpt"]), "--initial", str(p["store"]),
                                           "--init", "2020-03-20T02", "--lead", "10x", "--out",
                                           str(p["root"] / "o4.zarr")], 2, "lead '10x'"),
    ("rollout-lead-not-multiple", lambda p: ["rollout", "--checkpoint", str(p["ckpt"]), "--initial", str(p["store"]),
                                             "--init", "2020-03-20T02", "--lead", "90min", "--out",
                                             str(p["root"] / "o5.zarr")], 2, "lead '90min'"),
    ("rollout-init-unparsable", lambda p: ["rollout", "--checkpoint", str(p["ckpt"]), "--initial", str(p["store"]),
                                           "--init", "yesterday", "--out", str(p["root"] / "o6.zarr")], 2, "'yesterday'"),
    ("rollout-init-outside", lambda p: ["rollout", "--checkpoint", str(p["ckpt"]), "--initial", str(p["store"]),
                                        "--init", "1999-01-01T00", "--lead", "2h", "--out", str(p["root"] / "o7.zarr")],
     2, "1999-01-01"),
    ("rollout-out-suffix", lambda p: ["rollout", "--out", str(p["root"] / "forecast.txt")], 2, "forecast.txt must end in"),
    ("rollout-output-grid", lambda p: ["rollout", "--output-grid", "gauss:64"], 2, "key 'output_grid'"),
    ("rollout-perturbation-kind", lambda p: ["rollout", "--perturbation", "gaussian"], 2, "key 'perturbation.kind"),
    ("rollout-perturbation-empty", lambda p: ["rollout", "--perturbation", ""], 2, "--perturbation is empty"),
    ("rollout-variables-empty", lambda p: ["rollout", "--variables", ""], 2, "--variables is empty"),
    ("rollout-variables-unknown", lambda p: ["rollout", "--checkpoint", str(p["ckpt"]), "--initial", str(p["store"]),
                                             "--init", "2020-03-20T02", "--lead", "2h", "--variables", "gh,msl",
                                             "--out", str(p["root"] / "o9.zarr")], 2, "variables msl are not the model's"),
    ("rollout-output-every", lambda p: ["rollout", "--checkpoint", str(p["ckpt"]), "--initial", str(p["store"]),
                                        "--init", "2020-03-20T02", "--lead", "4h", "--output-every", "3h",
                                        "--out", str(p["root"] / "o10.zarr")], 2, "output_every=3h"),
    ("rollout-amplitude-negative", lambda p: ["rollout", "perturbation.amplitude=-1"], 2, "perturbation.amplitude"),
    ("rollout-initial-missing", lambda p: ["rollout", "--checkpoint", str(p["ckpt"]), "--initial",
                                           str(p["root"] / "noinit.zarr"), "--init", "2020-03-20T02",
                                           "--out", str(p["root"] / "o8.zarr")], 2, "noinit.zarr"),
    ("rollout-config-file-key", lambda p: ["rollout", "--config", config_file(p["root"], "r.yaml", {"lead_time": "1d"})],
     2, "r.yaml: unknown key 'lead_time'"),
    # -- configs/verify.yaml and verify ---------------------------------------------------------
    ("verify-forecast-missing", lambda p: ["verify", "--forecast", str(p["root"] / "nofc.zarr"), "--truth", str(p["store"]),
                                           "--out", str(p["root"] / "s1.nc")], 2, "nofc.zarr does not exist"),
    ("verify-out-zarr", lambda p: ["verify", "--forecast", str(p["fc"]), "--truth", str(p["store"]),
                                   "--out", str(p["root"] / "v.zarr")], 2, "v.zarr must end in .nc"),
    ("verify-metric", lambda p: ["verify", "metrics=[rmsee]"], 2, "key 'metrics.0'"),
    ("verify-region", lambda p: ["verify", "regions=[arctic]"], 2, "key 'regions.0'"),
    ("verify-baseline", lambda p: ["verify", "--baselines", "yesterday"], 2, "key 'baselines.0'"),
    ("verify-truth-missing", lambda p: ["verify", "--forecast", str(p["fc"]), "--truth", str(p["root"] / "notruth.zarr"),
                                        "--out", str(p["root"] / "s2.nc")], 2, "notruth.zarr"),
    ("verify-config-file-key", lambda p: ["verify", "--config", config_file(p["root"], "v.yaml", {"metric": ["rmse"]})],
     2, "v.yaml: unknown key 'metric'"),
    # -- plot -------------------------------------------------------------------------------------
    ("plot-nothing", lambda p: ["plot"], 2, "nothing to plot"),
    ("plot-scores-garbage", lambda p: ["plot", "--scores", str(p["root"] / "garbage.nc"), "--out", str(p["root"] / "pl")],
     2, "garbage.nc"),
    ("plot-scores-is-forecast", lambda p: ["plot", "--scores", str(p["fc"]), "--out", str(p["root"] / "pl")], 2,
     "fc.zarr is a directory"),
    ("plot-lead-999", lambda p: ["plot", "--forecast", str(p["fc"]), "--truth", str(p["store"]), "--lead", "999",
                                 "--out", str(p["root"] / "pl")], 2, "--lead 999"),
    ("plot-lead-units", lambda p: ["plot", "--forecast", str(p["fc"]), "--truth", str(p["store"]), "--lead", "1x",
                                   "--out", str(p["root"] / "pl")], 2, "--lead '1x'"),
    ("plot-member-99", lambda p: ["plot", "--forecast", str(p["fc"]), "--truth", str(p["store"]), "--lead", "1",
                                  "--member", "99", "--out", str(p["root"] / "pl")], 2, "--member 99"),
    ("plot-member-negative", lambda p: ["plot", "--forecast", str(p["fc"]), "--truth", str(p["store"]),
                                        "--member", "-1", "--out", str(p["root"] / "pl")], 2, "key 'member'"),
    ("plot-format", lambda p: ["plot", "--scores", "x.nc", "--format", "jpg"], 2, "key 'formats.0'"),
    # -- configs/data/*.yaml and prepare --------------------------------------------------------
    ("prepare-input-missing", lambda p: ["prepare", "--input", str(p["root"] / "none" / "*.nc"), "--out",
                                         str(p["root"] / "st1.zarr")], 2, "matches no file"),
    ("prepare-input-empty-dir", lambda p: ["prepare", "--input", str(p["root"] / "empty_dir"), "--out",
                                           str(p["root"] / "st2.zarr")], 2, "empty_dir holds no NetCDF"),
    ("prepare-grid", lambda p: ["prepare", "--grid", "gauss:64"], 2, "key 'grid'"),
    ("prepare-method", lambda p: ["prepare", "--method", "nearest"], 2, "key 'method'"),
    ("prepare-fill", lambda p: ["prepare", "--fill", "zero"], 2, "key 'fill'"),
    ("prepare-variables-empty", lambda p: ["prepare", "--variables", ""], 2, "--variables is empty"),
    ("prepare-variable-unknown", lambda p: ["prepare", "--input", str(p["era5"]), "--variables", "t2m,q700",
                                            "--grid", "legendre-gauss:8x16", "--out", str(p["root"] / "st3.zarr"),
                                            "scheduler=synchronous"], 2, "'q700'"),
    ("prepare-swe-days", lambda p: ["prepare", "--source", "swe", "swe.days=0"], 2, "key 'swe.days'"),
    # -- configs/operational.yaml and run; configs/demo.yaml and demo ----------------------------
    ("run-store-missing", lambda p: ["run", "--config", config_file(p["root"], "op.yaml", {
        "out": str(p["root"] / "op"), "store": str(p["root"] / "nostore.zarr")})], 2, "nostore.zarr"),
    ("run-init", lambda p: ["run", "--init", "yesterday", f"store={p['store']}", f"rollout.initial={p['store']}",
                            f"out={p['root'] / 'op'}"], 2, "--init 'yesterday'"),
    ("run-lock-timeout", lambda p: ["run", "lock_timeout_s=-1"], 2, "key 'lock_timeout_s'"),
    ("demo-model", lambda p: ["demo", "--models", "sfno,gpt"], 2, "key 'models.1'"),
    ("demo-grid", lambda p: ["demo", "grid=legendre:64"], 2, "key 'grid'"),
    ("demo-members", lambda p: ["demo", "members=0"], 2, "key 'members'"),
    ("demo-conserve", lambda p: ["demo", "conserve_global_mean=[gh,gz]"], 2, "key 'conserve_global_mean'"),
    # -- outputs that are, contain or lie inside an input: refused before any work -------------
    ("verify-out-is-forecast", lambda p: ["verify", "--forecast", str(p["fc_nc"]), "--truth", str(p["store"]),
                                          "--out", str(p["fc_nc"])], 2, "is the input --forecast"),
    ("verify-out-inside-truth", lambda p: ["verify", "--forecast", str(p["fc"]), "--truth", str(p["store"]),
                                           "--out", str(p["store"] / "scores.nc")], 2, "lies inside the input --truth"),
    ("rollout-out-is-initial", lambda p: _rollout(p, "--overwrite", out="store.zarr"), 2, "is the input --initial"),
    ("prepare-out-exists", lambda p: ["prepare", "--input", str(p["era5"]), "--variables", "t2m", "--grid",
                                      "legendre-gauss:8x16", "--out", str(p["store"])], 2,
     "store.zarr already exists; pass --overwrite"),
    ("prepare-out-contains-input", lambda p: ["prepare", "--input", str(p["era5"]), "--variables", "t2m", "--grid",
                                              "legendre-gauss:8x16", "--out", str(p["era5"]), "--overwrite"], 2,
     "contains the input --input"),
    ("prepare-append-and-overwrite", lambda p: ["prepare", "--input", str(p["era5"]), "--out", str(p["store"]),
                                                "--append", "--overwrite"], 2, "pass one of them"),
    ("train-out-is-store", lambda p: ["train", "--store", str(p["store"]), "--out", str(p["store"])], 2,
     "is the input --store"),
    ("plot-out-is-forecast", lambda p: ["plot", "--forecast", str(p["fc"]), "--truth", str(p["store"]), "--lead", "1",
                                        "--out", str(p["fc"])], 2, "is the input --forecast"),
    ("export-out-is-forecast", lambda p: ["export", str(p["fc"]), "--out", str(p["fc"])], 2, "is the input FORECAST"),
    ("run-out-contains-store", lambda p: ["run", "--config", _op_config(p, "op1.yaml", out=str(p["root"]))], 2,
     "contains the input store"),
    ("convert-new-is-old", lambda p: ["checkpoint", "convert", str(p["legacy"]), str(p["legacy"]), "--trust"], 2,
     "is the input OLD"),
    # -- outputs under a regular file: refused before any work ----------------------------------
    ("prepare-out-under-file", lambda p: ["prepare", "--input", str(p["era5"]), "--variables", "t2m", "--grid",
                                          "legendre-gauss:8x16", "--out", str(p["root"] / "garbage.nc" / "s.zarr")], 2,
     "garbage.nc is a file, not a directory"),
    ("train-out-under-file", lambda p: ["train", "--store", str(p["store"]), "--out", str(p["root"] / "garbage.nc" / "r")],
     2, "garbage.nc is a file, not a directory"),
    ("verify-out-under-file", lambda p: ["verify", "--forecast", str(p["fc"]), "--truth", str(p["store"]), "--out",
                                         str(p["root"] / "garbage.nc" / "s.nc")], 2, "garbage.nc is a file, not a directory"),
    ("plot-out-under-file", lambda p: ["plot", "--forecast", str(p["fc"]), "--truth", str(p["store"]), "--lead", "1",
                                       "--out", str(p["root"] / "garbage.nc" / "pl")], 2,
     "garbage.nc is a file, not a directory"),
    ("export-out-under-file", lambda p: ["export", str(p["fc"]), "--out", str(p["root"] / "garbage.nc" / "ex")], 2,
     "garbage.nc is a file, not a directory"),
    ("run-out-under-file", lambda p: ["run", "--config", _op_config(p, "op2.yaml", out=str(p["root"] / "garbage.nc" / "op"))],
     2, "garbage.nc is a file, not a directory"),
    ("rollout-out-under-file", lambda p: _rollout(p, out="garbage.nc/o.zarr"), 2, "garbage.nc is a file, not a directory"),
    # -- links: resolved or refused up front ------------------------------------------------------
    ("rollout-out-dangling-link", lambda p: _rollout(p, "--lead", "2h", out="dangling.zarr"), 2,
     "dangling.zarr is a symbolic link to"),
    ("rollout-lock-is-link", lambda p: _rollout(p, "--lead", "2h", out="locked.zarr"), 2,
     "locked.zarr.lock is a symbolic link"),
    # -- checkpoints -------------------------------------------------------------------------------
    ("rollout-checkpoint-format-1", lambda p: _rollout(p, "--lead", "2h", checkpoint="legacy", out="o11.zarr"), 2,
     "forecast checkpoint convert"),
    ("inspect-checkpoint-format-1", lambda p: ["inspect", str(p["legacy"])], 2, "forecast checkpoint convert"),
    ("convert-without-trust", lambda p: ["checkpoint", "convert", str(p["legacy"]), str(p["root"] / "new.pt")], 2,
     "pass --trust only if you trust"),
    ("rollout-checkpoint-misfit", lambda p: _rollout(p, "--lead", "2h", checkpoint="misfit", out="o12.zarr"), 2,
     "misfit.pt: its weights do not fit the model its config describes"),
    # -- the messages that once misled ------------------------------------------------------------
    ("config-binary-yaml", lambda p: ["rollout", "--config", str(p["root"] / "binary.yaml")], 2,
     "binary.yaml is not a YAML text file"),
    ("rollout-initial-nan", lambda p: _rollout(p, "--lead", "2h", initial="nan_store", out="o13.zarr"), 2,
     "hold NaN or infinite values in variable(s) 'gh' at 2020-03-20T02:00:00"),
    ("rollout-output-every-5h", lambda p: _rollout(p, "--lead", "4h", "--output-every", "5h", out="o14.zarr"), 2,
     "lead 4h (4 steps) is not a multiple of output_every=5h"),
    ("rollout-output-every-90min", lambda p: _rollout(p, "--lead", "4h", "--output-every", "90min", out="o15.zarr"), 2,
     "output_every '90min' is not a multiple of the model time step"),
    ("rollout-output-every-xyz", lambda p: _rollout(p, "--lead", "4h", "--output-every", "xyz", out="o16.zarr"), 2,
     "cannot parse output_every 'xyz'"),
    ("rollout-lead-negative", lambda p: _rollout(p, "--lead", "-12h", out="o17.zarr"), 2,
     "lead '-12h' must be a positive duration"),
    ("prepare-time-step-negative", lambda p: ["prepare", "--time-step", "-6h"], 2,
     "key 'time_step': time step '-6h' must be positive"),
    ("plot-forecast-is-store", lambda p: ["plot", "--forecast", str(p["store"]), "--out", str(p["root"] / "pl")], 2,
     "store.zarr is not a forecast"),
]


@pytest.mark.parametrize("argv, code, culprit", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_naming_the_culprit(inputs, capfd, argv, code, culprit):
    status = main(argv(inputs))
    _, err = capfd.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert status == code, err[-3000:]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert culprit in errors[0], errors[0]
    assert not re.match(r"error: [A-Za-z]*(Error|Exception): ", errors[0]), errors[0]   # not the generic form


def test_the_catalogue_covers_every_command(inputs):
    commands = {c[1](inputs)[0] for c in CASES}
    assert len(CASES) >= 90 and all(code == 2 for _, _, code, _ in CASES)
    assert {"prepare", "train", "rollout", "verify", "plot", "export", "inspect", "run", "demo", "checkpoint"} <= commands


def test_refusals_leave_nothing_behind(inputs):
    """The refused outputs were never started: no lock target, no forecast, no scores."""
    root = inputs["root"]
    assert not (root / "nowhere").exists() and not (root / "store.zarr" / "scores.nc").exists()
    assert not list(root.glob("o1[1-7].zarr*")) and not (root / "new.pt").exists()
