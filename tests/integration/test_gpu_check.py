"""The prepared GPU check (benchmarks/gpu_check.sh -> benchmarks/bench_gpu.py), run as its CPU dry run.

The GPU numbers themselves need a CUDA machine (never CI); here the whole script runs end to end on CPU in fp32
with a tiny model: every kind of run, the reference scoring, the tables, the compile pass (dynamo's eager backend),
the log and the JSON. Nothing is skipped on CPU: the dry run is the test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
BENCH = ROOT / "benchmarks" / "bench_gpu.py"
KINDS = ("vanilla", "plain", "lfr", "online")
# | kind | loop ms | step ms | tokens/s | ratio | overhead | range | memory | timed | loss |
ROW = re.compile(r"^\| (?P<kind>[a-z]+(?: \+ compile)?) \| (?P<loop>\d+\.\d) \| (?P<step>\d+\.\d) \| "
                 r"(?P<tps>[\d,]+) \| (?P<ratio>\d+\.\d{3})x \| (?P<over>[+-]\d+\.\d) % \| "
                 r"(?P<lo>\d+\.\d{3})-(?P<hi>\d+\.\d{3}) \| (?P<mem>\d+\.\d\d) GiB \| (?P<timed>\d+) \| "
                 r"(?P<loss>\d+\.\d{4}) \|$", re.M)


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_defaults_are_gpt2_small_and_dry_run_is_tiny():
    bench = _load_bench()
    a = bench.parse_args([])
    assert (a.n_layer, a.n_embd, a.n_head, a.vocab, a.block_size) == (12, 768, 12, 50257, 1024)
    assert (a.batch, a.warmup, a.steps, a.repeats) == (8, 10, 40, 3)
    assert a.kinds == list(KINDS) and not a.dry_run
    d = bench.parse_args(["--dry-run"])
    assert d.device == "cpu" and d.block_size == 64 and d.n_layer <= 2 and d.steps + d.warmup <= 10
    assert bench.parse_args(["--dry-run", "--steps", "3"]).steps == 3  # explicit sizes win over the dry run's
    assert bench.parse_args(["--kinds", "lfr"]).kinds == ["vanilla", "lfr"]  # the baseline always runs
    with pytest.raises(SystemExit):
        bench.parse_args(["--kinds", "bogus"])


def test_gpu_check_dry_run(tmp_path):
    log = tmp_path / "gpu_check.log"
    env = {**os.environ, "CURRICULA_GPU_CHECK_PYTHON": sys.executable, "CURRICULA_GPU_CHECK_LOG": str(log),
           "CUDA_VISIBLE_DEVICES": "", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),
           "TMPDIR": str(tmp_path)}
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "creating it" not in out  # the interpreter was given: no venv is made
    assert "(dry run)" in out and "CPU" in out

    rows = {m["kind"]: m for m in ROW.finditer(proc.stdout)}
    for kind in KINDS:
        assert kind in rows, f"no table row for {kind}:\n{out[-4000:]}"
        r = rows[kind]
        assert float(r["tps"].replace(",", "")) > 0
        assert float(r["ratio"]) > 0 and int(r["timed"]) > 0
        assert float(r["over"]) == pytest.approx(100 * (float(r["ratio"]) - 1), abs=0.11)
    assert rows["vanilla"]["ratio"] == "1.000"
    # vanilla and plain train the same blocks in the same order from the same init (fp32 on CPU)
    assert float(rows["plain"]["loss"]) == pytest.approx(float(rows["vanilla"]["loss"]), abs=1e-3)
    # the compile pass ran (dry run: dynamo's eager backend), after the eager table was printed
    assert "vanilla + compile" in rows and "plain + compile" in rows, out[-4000:]
    assert proc.stdout.index("| vanilla |") < proc.stdout.index("compile pass")

    assert re.search(r"^data: (the embedded sample corpus|synthetic token ids)", proc.stdout, re.M)
    assert re.search(r"expected total \d+ s", proc.stdout)
    assert re.search(r"^total \d+ s \(expected \d+ s", proc.stdout, re.M)
    assert "gpu_check: done" in proc.stdout

    logged = log.read_text()
    assert "no nvidia-smi" in logged or "NVIDIA" in logged or "nvidia-smi failed" in logged
    assert all(f"| {k} |" in logged for k in KINDS)
    numbers = json.loads(log.with_suffix(".json").read_text())
    assert numbers["dry_run"] is True and set(numbers["eager"]) == set(KINDS)
    assert set(numbers["compiled"]) == {"vanilla", "plain"}
    assert all(numbers["eager"][k]["tokens_per_s"] > 0 for k in KINDS)
