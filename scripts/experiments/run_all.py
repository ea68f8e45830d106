"""Run every experiment over 3 seeds, two at a time (one thread each), skipping runs whose result exists; then
collect them into docs/results.md.

    python scripts/experiments/prepare.py            # once: tokenizer + packed data (~2 min)
    python scripts/experiments/run_all.py            # round 1: ~95 min on 2 cores
    python scripts/experiments/run_all.py --only r2  # round 2: ~80 min on 2 cores, plus the DoReMi sweep (~45 min)
                                                     # and SmolLM2 (~10 min a run; needs the converted model)
    python scripts/experiments/collect.py            # tables and plots (run_all does this at the end)

Each run logs to ``runs/experiments/logs/<job>.log``; a crashed run leaves no result and is redone by the next call.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import DOREMI_SWEEP, ROOT, RUNS  # noqa: E402

HERE = Path(__file__).resolve().parent


def jobs(seeds: list[int]) -> list[tuple[str, list[str], Path]]:
    """(name, argv, result file), seed-major so that every experiment has a first seed early."""
    out = []
    for s in seeds:
        out += [
            (f"doremi-seed{s}", ["doremi_vs_baselines.py", "--seed", str(s)], RUNS / "doremi" / f"seed{s}"),
            (f"lfr-lfr-seed{s}", ["lfr_vs_random.py", "--variant", "lfr", "--seed", str(s)], RUNS / "lfr" / f"lfr-seed{s}"),
            (f"lfr-random-seed{s}", ["lfr_vs_random.py", "--variant", "random", "--seed", str(s)],
             RUNS / "lfr" / f"random-seed{s}"),
            (f"continual-rewarm-seed{s}", ["continual_en_de.py", "--variant", "rewarm", "--seed", str(s)],
             RUNS / "continual" / f"rewarm-seed{s}"),
            (f"continual-infinite-seed{s}", ["continual_en_de.py", "--variant", "infinite", "--seed", str(s)],
             RUNS / "continual" / f"infinite-seed{s}"),
            (f"continual-union-seed{s}", ["continual_en_de.py", "--variant", "union", "--seed", str(s)],
             RUNS / "continual" / f"union-seed{s}"),
        ]
        spread = RUNS.parent / "experiments-spread" / "lfr"  # the check on blocks from every source
        out += [(f"lfr-spread-{v}-seed{s}", ["lfr_vs_random.py", "--variant", v, "--seed", str(s), "--packed",
                                             "en-cap512-spread", "--out", str(spread)], spread / f"{v}-seed{s}")
                for v in ("lfr", "random")]
    return [(n, argv, d / "result.json") for n, argv, d in out + round2(seeds)]


R2 = RUNS.parent / "experiments-r2"
FORGETTING_PLAN = "scripts/experiments/plans/lfr_forgetting.yaml"
FORGETTING = {  # the same 448 blocks, ~9 and ~26 epoch-equivalents
    "short": '{"learn": 2, "cycles": 4, "reps": 3}',
    "long": '{"learn": 4, "cycles": 14, "reps": 5}',
}


def round2(seeds: list[int]) -> list[tuple[str, list[str], Path]]:
    """Round 2 (job names start with r2-): LFR where forgetting happens, on 448 blocks from every source, at two run
    lengths; DoReMi in one run vs three runs vs uniform at equal compute, and LFR over the DoReMi weights; DoReMi vs
    uniform with each English source as a domain (20 domains)."""
    out = []
    for s in seeds:
        for length, params in FORGETTING.items():
            folder = R2 / f"forgetting-{length}"
            out += [(f"r2-forgetting-{length}-{v}-seed{s}",
                     ["lfr_vs_random.py", "--variant", v, "--seed", str(s), "--packed", "en-cap64-spread", "--plan",
                      FORGETTING_PLAN, "--plan-params", params, "--eval-every", "25", "--out", str(folder)],
                     folder / f"{v}-seed{s}") for v in ("random", "lfr", "lfr-once")]
        out.append((f"r2-doremi-seed{s}", ["doremi_round2.py", "--seed", str(s)], R2 / "doremi" / f"seed{s}"))
    for s in seeds:  # DoReMi with the 20 English sources as domains (queued last)
        out.append((f"r2-doremi-sources-seed{s}",
                    ["doremi_round2.py", "--seed", str(s), "--packed", "en-sources-cap500", "--no-compose", "--mains",
                     "doremi_3run", "uniform_B", "--out", str(R2 / "doremi-sources")], R2 / "doremi-sources" / f"seed{s}"))
    for s in seeds[:2]:  # DoReMi's settings on the 20 sources: eta and the proxy's length (2 seeds; eta 1 is above)
        for tag, extra in DOREMI_SWEEP.items():
            folder = R2 / f"doremi-sweep-{tag}"
            out.append((f"r2-doremi-sweep-{tag}-seed{s}",
                        ["doremi_round2.py", "--seed", str(s), "--packed", "en-sources-cap500", "--no-compose",
                         "--mains", "doremi_3run", "uniform_B", *extra, "--out", str(folder)], folder / f"seed{s}"))
    for s in seeds:  # SmolLM2-135M on German (needs models/smollm2-135m: see continual_smollm2.py); ~10 min a variant,
        for v in ("rewarm", "infinite"):  # so 25 % replay only for the first seed
            folder = R2 / "continual-smollm2"
            replays = ["--replays", "0", "0.05"] if v == "rewarm" and s != seeds[0] else []
            out.append((f"r2-smollm2-{v}-seed{s}", ["continual_smollm2.py", "--variant", v, "--seed", str(s),
                                                     *replays, "--threads", "1"], folder / f"{v}-seed{s}"))
    return out


def run(job: tuple[str, list[str], Path]) -> tuple[str, int, float]:
    name, argv, _ = job
    log = RUNS / "logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "4294967296",
           "MALLOC_TRIM_THRESHOLD_": "4294967296", "TOKENIZERS_PARALLELISM": "false"}
    t = time.time()
    print(f"[{time.strftime('%H:%M:%S')}] start {name}", flush=True)
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, str(HERE / argv[0]), *argv[1:]], cwd=ROOT, env=env, stdout=f,
                            stderr=subprocess.STDOUT).returncode
    dt = time.time() - t
    print(f"[{time.strftime('%H:%M:%S')}] {'done' if rc == 0 else f'FAILED (exit {rc}, see {log})'} {name} "
          f"in {dt / 60:.1f} min", flush=True)
    return name, rc, dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", nargs="*", help="job name prefixes to run (e.g. lfr doremi continual-union)")
    ap.add_argument("--skip", nargs="*", default=[], help="job names to leave out (e.g. ones running elsewhere)")
    a = ap.parse_args()
    todo = [j for j in jobs(a.seeds) if not j[2].is_file() and j[0] not in a.skip
            and (not a.only or any(j[0].startswith(p) for p in a.only))]
    print(f"{len(todo)} runs to do: {', '.join(j[0] for j in todo)}", flush=True)
    with ThreadPoolExecutor(a.workers) as pool:
        results = list(pool.map(run, todo))
    failed = [n for n, rc, _ in results if rc != 0]
    subprocess.run([sys.executable, str(HERE / "collect.py")], cwd=ROOT, check=False)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
