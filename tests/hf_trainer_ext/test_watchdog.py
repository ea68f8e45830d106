"""hf_trainer_ext/watchdog.py: the stall watchdog's decision on fake heartbeat records, the watchdog thread on a fake
store, the arguments (stall_timeout, and --ddp_timeout reaching the gloo group), and the stopped-rank test: 2 CPU
processes under torchrun, rank 1 SIGSTOPped mid-run, rank 0 must exit 75 within the bound, naming rank 1 and the last
complete checkpoint."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from curricula.errors import ConfigError
from hf_trainer_ext.watchdog import EXIT_CODE, OFF, Watchdog, _training, decide, stall_bound

DRIVERS = Path(__file__).resolve().parents[1] / "drivers"


def rec(seq, step=10, phase="train", idle=20.0, budget=15.0):
    return {"seq": seq, "step": step, "phase": phase, "idle_s": idle, "budget_s": budget, "pid": 1, "host": "h"}


# ---- the decision, on fake records ----------------------------------------------------------------------------------


def test_a_peer_whose_heartbeat_did_not_advance_is_stopped_even_within_this_ranks_own_budget():
    before = {0: rec(5), 1: rec(7), 2: rec(3)}
    after = {0: rec(9), 1: rec(7), 2: rec(6)}
    assert decide(0, 3, before, after, idle_s=16, budget_s=15) == ("stopped", [1])
    assert decide(0, 3, before, after, idle_s=16, budget_s=600) == ("stopped", [1])  # e.g. waiting inside a save
    assert decide(2, 3, before, after, idle_s=16, budget_s=15) == ("stopped", [1])


def test_live_peers_within_their_budget_are_waited_for_and_so_is_this_ranks_own_phase():
    before = {0: rec(1), 1: rec(1, phase="save checkpoint", idle=5, budget=600)}
    after = {0: rec(4), 1: rec(4, phase="save checkpoint", idle=9, budget=600)}
    assert decide(0, 2, before, after, idle_s=16, budget_s=15) == ("wait", [1])
    alive = {0: rec(4), 1: rec(4, idle=20, budget=15)}
    assert decide(0, 2, before, alive, idle_s=16, budget_s=600) == ("wait", [])


def test_every_rank_alive_and_past_its_budget_is_stuck_naming_the_ranks_furthest_behind():
    before = {0: rec(1, step=12), 1: rec(1, step=11), 2: rec(1, step=12)}
    after = {0: rec(5, step=12), 1: rec(5, step=11), 2: rec(5, step=12)}
    assert decide(0, 3, before, after, idle_s=20, budget_s=15) == ("stuck", [1])
    same = {r: rec(6, step=12) for r in range(3)}
    assert decide(0, 3, after, same, idle_s=20, budget_s=15) == ("stuck", [])


def test_a_peer_that_never_beat_or_left_training_is_gone_once_this_ranks_budget_is_spent_never_stopped():
    before = {0: rec(1), 1: rec(3, phase=OFF)}
    after = {0: rec(4), 1: rec(3, phase=OFF)}  # its watchdog stopped cleanly: its sequence number stays
    assert decide(0, 3, before, after, idle_s=20, budget_s=900) == ("wait", [])  # e.g. the first step
    assert decide(0, 3, before, after, idle_s=20, budget_s=15) == ("gone", [1, 2])


# ---- the watchdog thread, on a fake store ---------------------------------------------------------------------------


class FakeStore:
    def __init__(self):
        self.data, self.lock = {}, threading.Lock()

    def set(self, key, value):
        with self.lock:
            self.data[key] = value if isinstance(value, bytes) else str(value).encode()

    def get(self, key):
        with self.lock:
            return self.data[key]

    def check(self, keys):
        with self.lock:
            return all(k in self.data for k in keys)


def _watch(tmp_path, store, **kw):
    ended = []
    wd = Watchdog(0.6, 0, 2, store, beat_s=0.1, window_s=0.3, report_dir=tmp_path, exit_fn=ended.append,
                  on_stuck=lambda report: f"(on_stuck saw {report['verdict']} {report['ranks']})", **kw)
    return wd, ended


def _peer(store, wd, stop, **record):
    """Rank 1 beating (a live process) until ``stop`` is set."""
    def run():
        seq = 0
        while not stop.is_set():
            seq += 1
            store.set(wd._key(1), json.dumps(rec(seq, **record)).encode())
            time.sleep(0.05)

    threading.Thread(target=run, daemon=True).start()


def _until(cond, timeout):
    deadline = time.monotonic() + timeout
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()


def test_the_watchdog_ends_the_process_naming_a_peer_that_stopped_beating(tmp_path):
    store = FakeStore()
    wd, ended = _watch(tmp_path, store)
    store.set(wd._key(1), json.dumps(rec(1, step=4)).encode())  # beat once, then stopped
    wd.set_phase("train")
    t0 = time.monotonic()
    wd.start(step=5)
    assert _until(lambda: ended, 5), "the watchdog did not fire"
    assert ended == [EXIT_CODE] and 0.6 <= time.monotonic() - t0 < 0.6 + 2 * 0.1 + 2.0
    report = json.loads((tmp_path / "rank0.json").read_text())
    assert report["verdict"] == "stopped" and report["ranks"] == [1] and report["step"] == 5
    msg = report["message"]
    assert "rank(s) [1] stopped" in msg and "step 4" in msg and "(on_stuck saw stopped [1])" in msg
    assert msg.endswith(f"exit code {EXIT_CODE}.")
    assert json.loads(store.get(wd._key(0)))["seq"] > 1  # this rank kept beating


def test_the_watchdog_waits_for_a_live_peer_inside_its_phase_budget_then_calls_it_stuck(tmp_path, capfd):
    store = FakeStore()
    wd, ended = _watch(tmp_path, store)
    stop = threading.Event()
    try:
        t0 = time.monotonic()
        _peer(store, wd, stop, phase="save checkpoint", idle=0.0, budget=600)  # busy: idle below its budget
        wd.start(step=5)
        time.sleep(1.5)
        assert ended == []
        assert "waiting for rank 1 in 'save checkpoint'" in capfd.readouterr().err
        stop.set()
        time.sleep(0.1)
        stop.clear()
        _peer(store, wd, stop, step=3, idle=700.0, budget=600)  # alive, past its budget, behind
        assert _until(lambda: ended, 3)
        report = json.loads((tmp_path / "rank0.json").read_text())
        assert report["verdict"] == "stuck" and report["ranks"] == [1] and time.monotonic() - t0 > 1.5
        assert "every rank is alive but none made progress" in report["message"]
    finally:
        stop.set()


def test_progress_keeps_the_watchdog_quiet_and_a_train_that_raised_stops_it_without_firing(tmp_path):
    store = FakeStore()
    wd, ended = _watch(tmp_path, store, still_watching=lambda: training)
    training = True
    store.set(wd._key(1), json.dumps(rec(1)).encode())  # a peer that stopped
    wd.start()
    for _ in range(15):  # progress every 0.1 s: never idle long enough to look
        time.sleep(0.1)
        wd.progress()
    assert ended == []
    training = False  # train() raised: no on_train_end, no more progress
    assert _until(lambda: not wd._thread.is_alive(), 3)
    assert ended == [] and json.loads(store.get(wd._key(0)))["phase"] == OFF


def test_the_training_check_finds_trainers_loop_on_the_thread():
    me = threading.get_ident()

    def _inner_training_loop():
        return _training(me)()

    assert _inner_training_loop() and not _training(me)()


def test_a_phase_restores_the_enclosing_one(tmp_path):
    wd, _ = _watch(tmp_path, FakeStore())
    wd.set_phase("epoch end", 100)
    with wd.phase("save checkpoint", 600):
        assert (wd.phase_name, wd.budget_s) == ("save checkpoint", 600)
    assert (wd.phase_name, wd.budget_s) == ("epoch end", 100)


# ---- arguments ------------------------------------------------------------------------------------------------------


def test_stall_timeout_defaults_to_a_bound_below_ddp_timeout_and_bad_values_are_refused(tmp_path):
    from hf_trainer_ext import CurriculumTrainingArguments

    def targs(**kw):
        return CurriculumTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kw)

    assert stall_bound(targs()) == 600 and stall_bound(targs(ddp_timeout=60)) == 30
    assert stall_bound(targs(ddp_timeout=8)) == 0  # under 5 s: off, ddp_timeout alone is as quick
    assert stall_bound(targs(stall_timeout=0)) == 0 and stall_bound(targs(stall_timeout=45, ddp_timeout=60)) == 45
    for bad, ddp in [(-1, 1800), (3, 1800), (60, 60), (900, 600), (float("nan"), 1800)]:
        with pytest.raises(ConfigError, match="--stall_timeout"):
            targs(stall_timeout=bad, ddp_timeout=ddp)


# ---- two CPU processes, rank 1 SIGSTOPped ---------------------------------------------------------------------------

BOUND, DDP_TIMEOUT, STOP_AT, SAVE_STEPS = 15, 120, 12, 5  # rank 0's gloo timeout (120 s) must not be what ends it
MARGIN = 60  # a busy 2-core machine: the bound is B + 2 beats (17 s); anything under B + 60 s is the watchdog's


def _exited(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def _end(pid: int | None) -> None:
    if pid is not None:
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def stopped_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("stall")
    log = out / "torchrun.log"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(DRIVERS / "stall_driver.py"), str(out), str(BOUND), str(DDP_TIMEOUT), str(STOP_AT), str(SAVE_STEPS)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    pids: dict[int, int] = {}
    with open(log, "w") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240  # start-up (imports) and 12 steps with 2 checkpoints
        while not (out / "stopped.json").exists():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(0.2)
        stopped = json.loads((out / "stopped.json").read_text())
        pids = {r: json.loads((out / f"rank{r}.json").read_text())["pid"] for r in (0, 1)}
        while not _exited(pids[0]) and time.time() < stopped["time"] + BOUND + MARGIN:
            time.sleep(0.05)
        seconds = time.time() - stopped["time"]
        assert _exited(pids[0]), f"rank 0 still runs {seconds:.0f} s after rank 1 stopped:\n" + log.read_text()[-3000:]
        _end(pids[1])  # torchrun would wait 30 s for the stopped rank to take its SIGTERM
        proc.wait(timeout=60)
    finally:
        for pid in pids.values():
            if not _exited(pid):
                _end(pid)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return out, stopped, pids, seconds, log.read_text()


def test_a_stopped_rank_ends_the_job_within_the_bound_naming_it_and_the_last_complete_checkpoint(stopped_rank_run):
    out, stopped, pids, seconds, log = stopped_rank_run
    assert stopped["step"] == STOP_AT
    assert "rank      : 0 (local_rank: 0)\n  exitcode  : 75 " in log, log[-3000:]  # torchrun's summary of rank 0
    report = json.loads((out / "run" / "watchdog" / "rank0.json").read_text())
    last = out / "run" / f"checkpoint-{STOP_AT // SAVE_STEPS * SAVE_STEPS}"  # checkpoint-10: complete
    assert (last / "COMPLETE").is_file()
    msg = report["message"]
    assert report["verdict"] == "stopped" and report["ranks"] == [1] and report["idle_s"] >= BOUND
    assert "rank(s) [1] stopped" in msg and f"pid {pids[1]}" in msg and f"Last complete checkpoint: {last};" in msg
    assert "--resume_from_checkpoint latest" in msg and f"exit code {EXIT_CODE}" in msg
    assert msg in log  # on the job's log, followed by the Python stacks
    assert "[watchdog] rank 0: Python stacks of this process:" in log
    # measured: rank 0's exit after rank 1's SIGSTOP (about B + 1 s here); the watchdog's own clock agrees
    print(f"rank 0 exited {seconds:.1f} s after rank 1 stopped (report written at "
          f"{report['unix_time'] - stopped['time']:.1f} s; bound {BOUND} s + 2 beats of {report['beat_s']:g} s)")
    assert report["unix_time"] - stopped["time"] <= seconds < BOUND + MARGIN


def test_ddp_timeout_reaches_the_gloo_group_of_cpu_processes(stopped_rank_run):
    out = stopped_rank_run[0]
    for r in (0, 1):
        ranks = json.loads((out / f"rank{r}.json").read_text())
        assert ranks["world"] == 2
        assert ranks["gloo_timeout_s"] == ranks["store_timeout_s"] == DDP_TIMEOUT  # not torch's 1800 s
