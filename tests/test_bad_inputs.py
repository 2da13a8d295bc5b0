"""A catalogue of bad inputs across every command and config file.

Each case runs the ``forecast`` command line (:func:`forecast.cli.main`, what the
executable runs) and asserts its exit code (2: bad input) and that stderr holds exactly
one ``error:`` line naming the culprit (key, file, option or value), with no traceback.
Small real inputs (a store, a checkpoint, a forecast, NetCDF files) are made once.
"""

from __future__ import annotations

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
    return {"root": root, "store": store, "ckpt": ckpt, "fc": forecast, "corrupt": corrupt, "era5": root / "era5",
            "run": root / "run"}


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
]


@pytest.mark.parametrize("argv, code, culprit", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_error_line_naming_the_culprit(inputs, capfd, argv, code, culprit):
    status = main(argv(inputs))
    _, err = capfd.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert status == code, err[-3000:]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    assert culprit in errors[0], errors[0]


def test_the_catalogue_covers_every_command(inputs):
    commands = {c[1](inputs)[0] for c in CASES}
    assert len(CASES) >= 40
    assert {"prepare", "train", "rollout", "verify", "plot", "run", "demo"} <= commands
