"""Checkpoints: round trip, and refusal of truncated, corrupt, unchecked or mismatched files."""

from pathlib import Path

import numpy as np
import pytest
import torch

from forecast.checkpoint import (Checkpoint, check_compatible, checksum_path, load_checkpoint, load_model,
                                 save_checkpoint)
from forecast.config import ModelConfig
from forecast.forcings import forcing_names
from forecast.models import build_model
from pipelines.errors import InputError
from pipelines.grids import Grid

GRID = Grid.parse("legendre-gauss:8x16")
VARIABLES = ["gh", "u", "v", "vo"]


def _checkpoint(architecture: str = "sfno") -> Checkpoint:
    config = ModelConfig(architecture=architecture, embed_dim=8, num_layers=1, scale_factor=1, patch_size=[4, 4],
                         num_blocks=2)
    torch.manual_seed(0)
    model = build_model(config, GRID, len(VARIABLES), len(forcing_names([])))
    return Checkpoint(model_config=config, train_config={"lr": 1e-3}, grid=GRID, variables=VARIABLES, static_names=[],
                      static=None, mean=np.arange(4.0), std=np.ones(4), time_step_seconds=3600.0, step=7, epoch=1,
                      model_state=model.state_dict(), rng_state=[{"torch": torch.get_rng_state()}], batch_in_epoch=3)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "step_0000007.pt", _checkpoint())


@pytest.mark.parametrize("architecture", ["sfno", "afno"])
def test_round_trip_and_load_model(tmp_path, architecture):
    original = _checkpoint(architecture)
    path = save_checkpoint(tmp_path / "c.pt", original)
    ckpt = load_checkpoint(path)
    assert ckpt.grid == GRID and ckpt.variables == VARIABLES and ckpt.model_config == original.model_config
    assert (ckpt.step, ckpt.epoch, ckpt.batch_in_epoch) == (7, 1, 3)
    assert len(ckpt.sha256) == 64 and checksum_path(path).read_text().startswith(ckpt.sha256)
    np.testing.assert_array_equal(ckpt.mean, original.mean)
    model, _ = load_model(path)
    assert not model.training
    for name, value in original.model_state.items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=0)
    x = torch.zeros(1, 4, *GRID.shape)
    assert model(x, torch.zeros(1, len(forcing_names([])), *GRID.shape)).shape == x.shape


def _copy(saved: Path, tmp_path: Path) -> Path:
    target = tmp_path / saved.name
    target.write_bytes(saved.read_bytes())
    checksum_path(target).write_bytes(checksum_path(saved).read_bytes())
    return target


def test_truncated_checkpoint_is_refused(saved, tmp_path):
    path = _copy(saved, tmp_path)
    path.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated or corrupt") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


def test_corrupt_byte_is_refused(saved, tmp_path):
    path = _copy(saved, tmp_path)
    data = bytearray(saved.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="truncated or corrupt: its sha256"):
        load_checkpoint(path)


def test_unpicklable_file_with_matching_checksum_is_refused(tmp_path):
    import hashlib

    path = tmp_path / "garbage.pt"
    path.write_bytes(b"not a checkpoint at all")
    checksum_path(path).write_text(hashlib.sha256(path.read_bytes()).hexdigest() + "  garbage.pt\n")
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_missing_checksum_and_missing_file_are_refused(saved, tmp_path):
    path = _copy(saved, tmp_path)
    checksum_path(path).unlink()
    with pytest.raises(InputError, match="no checksum file"):
        load_checkpoint(path)
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_other_grid_or_variables_are_refused(saved):
    ckpt = load_checkpoint(saved)
    check_compatible(ckpt, GRID, VARIABLES)
    with pytest.raises(InputError, match=r"grid legendre-gauss:8x16, but the data are on grid equiangular:9x16"):
        check_compatible(ckpt, Grid.parse("equiangular:9x16"), VARIABLES)
    with pytest.raises(InputError, match=r"variables \[gh, u, v, vo\], but the data have \[gh, u, v\]"):
        check_compatible(ckpt, GRID, ["gh", "u", "v"])
