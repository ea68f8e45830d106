"""Two CPU processes (torchrun, gloo): every block once per epoch across ranks, complete log, identical tables."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curricula.logs import read_curriculum_log


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(Path(__file__).parent / "dist_lfr_run.py"), str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    run = json.loads((out / "run" / "curriculum" / "plan.json").read_text())
    return out, ranks, run


def test_two_processes_train_each_block_once_per_epoch(two_rank_run):
    out, ranks, run = two_rank_run
    assert [r["world"] for r in ranks] == [2, 2]
    log = read_curriculum_log(out / "run").to_pandas()
    bounds = [0]
    for e in run["epochs"]:
        bounds.append(bounds[-1] + e["steps"])
    for e in run["epochs"]:
        logged = log[log.epoch == e["index"]].block_id.tolist()
        assert len(logged) == len(set(logged)) == e["blocks"]  # complete, each block once
        trained = []
        for r in ranks:
            mine = [b for s, batch in zip(r["steps"], r["batches"]) if bounds[e["index"]] < s <= bounds[e["index"] + 1]
                    for b in batch if b >= 0]
            trained.append(set(mine))
            assert len(mine) == len(set(mine))
        assert not trained[0] & trained[1]  # ranks see disjoint blocks
        assert trained[0] | trained[1] == set(logged)
    assert {e["kind"] for e in run["epochs"]} == {"learn", "focus", "review"}
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == run["total_steps"]


def test_two_processes_hold_identical_tables(two_rank_run):
    _, ranks, run = two_rank_run
    assert len(ranks[0]["tables"]) == len(run["epochs"])
    assert ranks[0]["tables"] == ranks[1]["tables"]
    # one table per node: after every boundary with a next epoch both processes map the node's shared copy
    assert ranks[0]["mapped"][:-1] == ranks[1]["mapped"][:-1] == [True] * (len(run["epochs"]) - 1)
