"""The production-horizon simulation (benchmarks/bench_horizon.py) as a test: an online method's state stays flat.

Run briefly (20 k steps of one-run DoReMi, then 2 k for comparison): per-step cost at the end no higher than at the
start (process CPU time, a generous factor: the history replay this replaced was 14x slower at 20 k steps), the
checkpoint the same size at 2 k and 20 k steps, and the resume at the last step draws its next batch without
replaying the stream (the mixer is never fast-forwarded) and equal to the uninterrupted run's.
"""

import importlib.util
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_horizon", ROOT / "benchmarks" / "bench_horizon.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doremi_online_state_stays_flat_and_resumes_without_replay(tmp_path, monkeypatch):
    bench = _bench()
    from curricula.mixing.mixer import DomainMixer

    real_skip = DomainMixer.skip
    skips = []

    def counting_skip(self, n):
        skips.append(n)
        return real_skip(self, n)

    monkeypatch.setattr(DomainMixer, "skip", counting_skip)
    monkeypatch.setattr(time, "perf_counter", time.process_time)  # CPU time: less sensitive to a busy machine
    short = bench.run_method("doremi_online", 2_000, 400, 20, 32, tmp_path / "short")
    long = bench.run_method("doremi_online", 20_000, 400, 20, 32, tmp_path / "long")
    assert skips == []  # the resumed stream continued from its saved position: nothing was replayed
    assert long["checkpoint_bytes"] == pytest.approx(short["checkpoint_bytes"], rel=0.02)
    assert long["us_last"] <= 3.0 * long["us_first"] + 50, long


def test_every_method_runs_in_short_mode(tmp_path, capsys):
    bench = _bench()
    assert bench.main(["--method", "all", "--steps", "2000", "--short", "--work", str(tmp_path)]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("horizon ")]
    methods = {dict(kv.split("=") for kv in x.split()[1:])["method"] for x in lines}
    assert {"mixture", "replay", "group_dro", "doremi_online", "lfr"} <= methods
