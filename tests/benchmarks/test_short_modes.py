"""Every benchmark runs in its short mode, so a change that breaks a benchmark fails CI (its numbers are printed,
never asserted: benchmarks are not timed tests)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ["bench_pack.py", "bench_rewrite.py", "bench_scoring.py", "bench_doremi.py", "bench_overhead.py",
              "bench_checkpoint.py"]


@pytest.mark.parametrize("script", BENCHMARKS)
def test_benchmark_short_mode_runs(script, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "4294967296",
           "MALLOC_TRIM_THRESHOLD_": "4294967296", "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--short"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.strip(), "a benchmark prints its numbers"
