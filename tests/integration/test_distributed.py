"""Two CPU processes (torchrun, gloo), each run by a driver in tests/drivers/: LFR trains every block once per epoch
across ranks with a complete log and identical tables; a replay stage shares one stream; DoReMi's proxy and one-run
DoReMi hold identical weights on both ranks and resume exactly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from curricula.logs import read_curriculum_log

DRIVERS = Path(__file__).resolve().parents[1] / "drivers"


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(DRIVERS / "dist_lfr_run.py"), str(out)]
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
    decider, follower = ranks
    assert len(decider["tables"]) == len(follower["tables"]) == len(run["epochs"])
    # the same decision on both: the eligible set of every epoch is identical
    assert [t["eligible"] for t in decider["tables"]] == [t["eligible"] for t in follower["tables"]]
    # one copy of the losses per node: the deciding process holds them (every block seen), the other follows the
    # bit-packed eligible set it wrote and never builds a loss column
    assert all(t["loss"] is not None and len(t["loss"]) == len(decider["tables"][0]["loss"]) for t in decider["tables"])
    assert all(t["loss"] is None and "loss" not in t["built"] and "ppl" not in t["built"] for t in follower["tables"])
    assert follower["mapped"] == [True] * len(run["epochs"]) and decider["mapped"] == [False] * len(run["epochs"])

# ---- continual pretraining: a replay stage's loader -----------------------------------------------------------------


def test_two_ranks_share_one_replay_stream(two_stages, tmp_path):
    import json
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(DRIVERS / "dist_replay_run.py"), str(tmp_path),
           str(two_stages / "packed-en"), str(two_stages / "packed-de")]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == 2 and r0["stream"] == r1["stream"]  # the identical stream on every rank
    stream = np.array(r0["stream"]).reshape(10, 16)
    # each rank's micro-batches are its shard of the stream: together, every global batch exactly once
    got = np.array(r0["rows"] + r1["rows"])
    assert sorted(got.reshape(-1).tolist()) == sorted(stream.reshape(-1).tolist())
    assert not set(map(tuple, r0["rows"])) & set(map(tuple, r1["rows"]))
    assert np.all((stream >= r0["n_new"]).sum(1) == 4)  # 25 % of 16 replayed in every global batch


# ---- DoReMi: the proxy (Group DRO) and one-run DoReMi ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(reference):
    """The reference's cached losses."""
    return reference[1]


def _torchrun(out, cache, *extra):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(DRIVERS / "dist_doremi_run.py"), str(out), str(cache),
           *map(str, extra)]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_two_ranks_hold_identical_weights_and_resume_exactly(reference, tmp_path):
    _, cache = reference
    _torchrun(tmp_path, cache, 8)
    r0, r1 = (json.loads((tmp_path / f"weights-rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2
    assert r0["history"] == r1["history"] and len(r0["history"]) == 8  # every step, bit-identical
    # resume in the middle (checkpoint at step 4) restores the weights and the running average exactly
    _torchrun(tmp_path, cache, 8, tmp_path / "proxy" / "checkpoint-4")
    resumed = json.loads((tmp_path / "weights-rank0-resumed.json").read_text())
    assert resumed["history"] == r0["history"][4:]
    assert resumed["average"] == r0["average"]


def test_online_two_ranks_hold_identical_weights_and_streams_and_resume_exactly(cache, tmp_path):
    def run(*extra):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(DRIVERS / "dist_doremi_run.py"), str(tmp_path), str(cache), *map(str, extra)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "DOREMI_METHOD": "online"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    run(8)
    r0, r1 = (json.loads((tmp_path / f"weights-rank{r}-online.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and len(r0["history"]) == 8 and len(r0["stream"]) == 8
    assert r0["history"] == r1["history"] and r0["stream"] == r1["stream"]  # bit-identical on both ranks
    run(8, tmp_path / "online" / "checkpoint-4")
    resumed = json.loads((tmp_path / "weights-rank0-online-resumed.json").read_text())
    # the resumed run continues the stream at step 4 (nothing replayed) and learns the same weights
    assert resumed["history"] == r0["history"][4:] and resumed["stream"] == r0["stream"][4:]
