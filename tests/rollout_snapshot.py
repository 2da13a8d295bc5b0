"""Snapshot of seeded rollouts, to check that a refactoring of the rollout core changes no bit.

    python tests/rollout_snapshot.py save DIR      # on the commit before the change
    python tests/rollout_snapshot.py compare DIR   # on the commit after it

Runs, on one torch thread and tiny untrained checkpoints (:mod:`rollout_factories`):

* ``stochastic``: two noise-conditioned SFNOs (AR(1) noise, hyperdiffusion) with the noise
  amplitude changed at inference, every perturbation kind combined and centred, uneven member
  batches, written every 2 steps on another grid, with the spectral cap and the conservation;
* ``deterministic``: one SFNO, two init times, a written subset of the variables;
* ``dyffusion`` and ``dyffusion-intermediate``: DYffusion with inference and member dropout,
  with and without the states between its steps.

``save`` writes each forecast's values and its resolved configuration (what its ``config_hash`` is made of) to ``DIR/<case>.npz``;
``compare`` runs them again and exits 1 unless every array is equal bit for bit.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from rollout_factories import TINY_MODEL, make_checkpoint, rollout_config  # noqa: E402
from train_factories import make_swe_store  # noqa: E402

from forecast.config import PerturbationConfig  # noqa: E402
from forecast.rollout import open_forecast, rollout  # noqa: E402


def _cases(root: Path) -> dict[str, Path]:
    store = make_swe_store(root / "store.zarr", n_times=24)
    stochastic = TINY_MODEL.model_copy(update={"noise_channels": 2, "noise_autocorrelation": 0.5,
                                               "hyperdiffusion_efold_hours": 2.0})
    spectrum = np.ones((4, 16)) * 10.0
    sfno = [make_checkpoint(root / f"stochastic{k}.pt", store, seed=k, model=stochastic, weight_scale=0.3,
                            noise_weight=0.5, power_spectrum=spectrum) for k in range(2)]
    every_kind = PerturbationConfig(kind=["spherical-gaussian", "bred-vector", "data-spectrum"], amplitude=0.05,
                                    length_scale_km=2000.0, bred_cycles=2, bred_window_hours=2.0)
    deterministic = make_checkpoint(root / "sfno.pt", store, seed=3, weight_scale=0.3)
    dyffusion = TINY_MODEL.model_copy(update={"architecture": "dyffusion", "mlp_dropout": 0.1,
                                              "drop_path_rate": 0.1})
    dyf = make_checkpoint(root / "dyffusion.pt", store, model=dyffusion, weight_scale=0.3, horizon=3)
    configs = {
        "stochastic": rollout_config(sfno, store, root / "stochastic.zarr", members=5, batch_members=2, lead="6h",
                                     init_times=["2020-03-20T08"], perturbation=every_kind, noise_amplitude=1.5,
                                     output_every=2, output_grid="equiangular:8x16", regrid_method="conservative",
                                     spectral_cap=2.0, conserve_global_mean=["gh"]),
        "deterministic": rollout_config([deterministic], store, root / "deterministic.zarr", members=2,
                                        init_times=["2020-03-20T06", "2020-03-20T09"], variables=["gh", "vo"]),
        "dyffusion": rollout_config([dyf], store, root / "dyffusion.zarr", members=3, lead="6h",
                                    init_times=["2020-03-20T03"], dropout=0.3, member_dropout=0.2),
        "dyffusion-intermediate": rollout_config([dyf], store, root / "dyffusion-intermediate.zarr", members=3,
                                                 lead="6h", init_times=["2020-03-20T03"], dropout=0.3,
                                                 member_dropout=0.2, intermediate=True, batch_members=2),
    }
    return {name: rollout(config) for name, config in configs.items()}


def _arrays(path: Path) -> dict[str, np.ndarray]:
    ds = open_forecast(path)
    arrays = {f"var/{v}": ds[v].values for v in ds.data_vars}
    arrays["lead_time"] = ds["lead_time"].values.astype("timedelta64[ns]").astype(np.int64)
    resolved = json.loads(ds.attrs["provenance"])["resolved"]
    resolved.pop("checkpoint_sha256")   # the checkpoint files' bytes vary from run to run
    arrays["resolved"] = np.array(json.dumps(resolved, sort_keys=True))
    return arrays


def main(mode: str, directory: str) -> int:
    torch.set_num_threads(1)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="") as tmp:
        work = Path(tmp).with_name("rollout-snapshot-work")   # the same paths each time: they are in the config hash
        shutil.rmtree(work, ignore_errors=True)
        Path(tmp).rename(work)
        for name, path in _cases(work).items():
            arrays = _arrays(path)
            if mode == "save":
                np.savez(out / f"{name}.npz", **arrays)
                print(f"{name}: saved {len(arrays)} arrays")
                continue
            saved = dict(np.load(out / f"{name}.npz"))
            for key in sorted(set(saved) | set(arrays)):
                same = key in saved and key in arrays and saved[key].shape == arrays[key].shape \
                    and saved[key].tobytes() == arrays[key].tobytes()
                failed += not same
                print(f"{name}: {key}: {'identical' if same else 'DIFFERENT'}")
        shutil.rmtree(work)
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("save", "compare"):
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
