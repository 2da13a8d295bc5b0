"""Distributed rollout: a real 2-process ``torchrun`` (gloo, CPU), killed mid-way and resumed,
writes the same bytes as one process; both processes write their own units."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from rollout_factories import (make_checkpoint, make_swe_store, single_thread_rollout, wait_for_leads,
                               write_rollout_config)

from forecast.rollout import open_forecast
from forecast.rollout.io import UNITS_DIR, completed_leads, is_complete, partial_path
from forecast.rollout.shards import member_block, units_of_rank, work_units

REPO = Path(__file__).resolve().parents[1]
OPTIONS = dict(init_times=["2020-03-20T02", "2020-03-20T05"], lead="300h", members=4, batch_members=2,
               perturbation={"kind": ["spherical-gaussian"], "amplitude": 0.1, "length_scale_km": 1500.0})


def torchrun_rollout(config_file: Path, nproc: int = 2) -> subprocess.Popen:
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FORECAST_PROGRESS": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([str(torchrun), "--standalone", f"--nproc_per_node={nproc}", "-m", "forecast.cli",
                             "rollout", "--config", str(config_file)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process below it (torchrun's workers run in their own sessions)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    todo, tree = [pid], []
    while todo:
        tree.append(todo.pop())
        todo.extend(children.get(tree[-1], []))
    for member in reversed(tree):   # the workers first, so that none outlives the kill
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_units_cover_every_member_once_and_spread_over_ranks():
    units = work_units(n_inits=3, members=5, block=member_block(5, 2))
    assert [(u.init_index, u.start, u.stop) for u in units[:3]] == [(0, 0, 2), (0, 2, 4), (0, 4, 5)]
    ranks = [units_of_rank(units, r, 2) for r in range(2)]
    assert sorted(ranks[0] + ranks[1], key=units.index) == units and not set(ranks[0]) & set(ranks[1])
    assert member_block(5, None) == 5 and member_block(3, 8) == 3


def test_two_processes_killed_and_resumed_match_one_process(tmp_path):
    store = make_swe_store(tmp_path / "store.zarr", n_times=24)
    ckpt = make_checkpoint(tmp_path / "model.pt", store, weight_scale=0.02)
    reference = single_thread_rollout([ckpt], store, tmp_path / "one.zarr", **OPTIONS)

    out = tmp_path / "two.zarr"
    config_file = write_rollout_config(tmp_path / "rollout.yaml", [ckpt], store, out, **OPTIONS)
    proc = torchrun_rollout(config_file)
    wait_for_leads(proc, partial_path(out), at_least=5)
    kill_tree(proc.pid)                    # torchrun and both workers
    proc.communicate(timeout=60)
    done = completed_leads(partial_path(out))
    assert not out.exists() and min(done) < 300, f"not interrupted mid-way: {done}"
    ranks = {json.loads(p.read_text())["rank"] for p in (partial_path(out) / UNITS_DIR).glob("*.json")}
    assert ranks == {0, 1}, "both processes should have written units before the kill"

    resumed = torchrun_rollout(config_file)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert is_complete(out) and not partial_path(out).exists()
    expected, actual = open_forecast(reference), open_forecast(out)
    for name in expected.data_vars:
        a, b = expected[name].values, actual[name].values
        assert np.isfinite(a).all() and a.tobytes() == b.tobytes(), name
    assert actual["gh"].encoding["chunks"][0] == 2   # one member block per chunk: no shared chunks
    assert expected.attrs["config_hash"] == actual.attrs["config_hash"]
