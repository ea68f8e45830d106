"""SIGKILL at every kind of point of an LFR run (training steps, inside checkpoint saves with save_total_limit=1, the
curriculum state, the completeness marker, the rotation, epoch logs, every atomic write and halfway through them),
then resume with resume_from_checkpoint=True: each resume continues bit-identically to the uninterrupted run, or
refuses with a named message while a complete earlier checkpoint (or, before the first one, a fresh start) remains."""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_every_kill_point_resumes_identically_or_refuses_by_name(tmp_path):
    driver = Path(__file__).resolve().parents[1] / "drivers" / "crash_driver.py"
    proc = subprocess.run([sys.executable, str(driver), str(tmp_path)], env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    results = summary["results"]
    killed = [r for r in results if r["first"] == "killed"]
    print(f"\ncrash harness: {len(killed)} kill points tried ({summary['calls']})")
    assert len(killed) >= 40
    kinds = {r["kill"][0] for r in killed}
    assert {"training_step", "curriculum_state", "marker", "rotation", "rng_state", "atomic_write_mid"} <= kinds
    for r in killed:
        assert r["resume"] in ("ok", "refused"), r
        if r["resume"] == "refused":  # named, and a way on: a complete checkpoint, or nothing was complete yet
            assert r["message"].startswith("CheckpointError: ") and "complete checkpoint" in r["message"], r
            assert r["complete_left"] or r.get("restart") == "ok", r
        assert r["identical"], r  # curriculum log, focus reports, table, weights and losses: bit for bit
