"""Every method at production horizons, by simulation: per-step curriculum cost, memory, checkpoints and resume time
as a function of run length (no model: synthetic losses drive the real curriculum code).

    python benchmarks/bench_horizon.py --method doremi_online --steps 1000000 [--domains 20] [--global-batch 32]
    python benchmarks/bench_horizon.py --method lfr --blocks 100000000 --steps 1000000
    python benchmarks/bench_horizon.py --method all --steps 10000 --short          # what the test runs

What runs is what a training run runs, minus the model:

* the method is built from its registered config (``curricula.methods.load_recipe``) exactly as the trainer builds it;
* ``CurriculumSampler`` (the trainer's sampler) is iterated as Trainer's DataLoader iterates it, one global batch of
  row ids per optimizer step;
* after each step the curriculum observes synthetic per-domain statistics of that batch (``StepStats``: each domain's
  loss follows a power law in the tokens it has seen, its reference loss a lower one), for methods that need them;
  a method that learns from held-out loss (Aioli) gets the same power law, noise-free, as ``EvalStats`` whenever
  ``wants_eval`` says so (counted: ``evals``);
* at each epoch end it gets every trained block's synthetic loss (``EpochRecords``) and decides the next epoch;
* one step before the end, a checkpoint is written with the trainer's own path (``Curriculum.flush_logs`` then
  ``Curriculum.save`` into ``checkpoint/curriculum``); after the run it is resumed the way a resumed run does it: a
  new method built from its config, ``load`` of that folder, and the next global batch from ``batches(epoch,
  start)``, which must equal the last batch of the uninterrupted run (checked).

Reported per method: the curriculum's cost per step (microseconds of wall time, over the first and the last 1 % of
steps: a method whose state grows with the run is slower at the end), the growth of resident memory over the run,
the checkpoint's size and save time, and the time to resume at the last step. Boundaries (LFR) are timed apart.
Ends with one line per method (parsed by a checker)::

    horizon method=<name> steps=<N> us_per_step_first=<float> us_per_step_last=<float> checkpoint_bytes=<int> resume_s=<float>

For LFR, ``--blocks`` sets the data (10 M / 100 M blocks) and the global batch is chosen so that the plan's epochs add
up to about ``--steps`` steps. Prints numbers; not a test (``--short`` is what ``tests`` run to keep it working).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METHODS = ("mixture", "replay", "group_dro", "doremi_online", "odm", "ado", "aioli", "lfr")
RECIPES = {
    "mixture": {"method": "mixture", "weights": "uniform"},
    "replay": {"method": "replay", "replay": 0.25},
    "group_dro": {"method": "group_dro"},
    "doremi_online": {"method": "doremi_online"},
    "odm": {"method": "odm"},
    "ado": {"method": "ado"},
    # the paper's rounds are 250 steps, too short for the LearnParams of 20 domains (20 x 4 sweeps x 4 steps = 320)
    "aioli": {"method": "aioli", "update_steps": 500},
    "lfr": {"method": "lfr", "phases": [{"kind": "learn", "epochs": 1}, {"kind": "focus", "epochs": 1, "drop_percent": 50},
                                        {"kind": "review", "epochs": 1}, {"kind": "focus", "epochs": 1, "drop_percent": 70}]},
}
# --short (the tests' quick pass): ADO's refits (512 L-BFGS starts per domain, seconds each) from 8 starts
SHORT = {"ado": {"fit_starts": 8}}
IDENTITY = {"name": "synthetic", "vocab_size": 50257, "vocab_sha256": "0" * 64}
BLOCK_TOKENS = 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


class Synthetic:
    """Per-domain losses that fall as a power law in the tokens each domain has been trained on."""

    def __init__(self, domains: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.floor = rng.uniform(1.5, 3.5, domains)
        self.scale = rng.uniform(2.0, 6.0, domains)
        self.alpha = rng.uniform(0.15, 0.45, domains)
        self.seen = np.ones(domains)
        self.rng = rng

    def step(self, step: int, counts: np.ndarray):
        from curricula.methods import StepStats

        self.seen += counts * BLOCK_TOKENS
        loss = self.floor + self.scale * self.seen ** -self.alpha
        tokens = counts * (BLOCK_TOKENS - 1.0)
        ref = self.floor + 0.5 * self.scale * self.seen ** -self.alpha
        excess = np.maximum(loss - ref, 0.0) * tokens
        return StepStats(step=step, tokens=tokens, loss_sum=loss * tokens, excess_sum=excess)

    def evaluate(self, step: int, tokens_per_domain: float = 64 * (BLOCK_TOKENS - 1.0)):
        """Held-out per-domain loss now (the power law without noise), as ``DomainLossProbe.measure`` reports it."""
        from curricula.methods import EvalStats

        loss = self.floor + self.scale * self.seen ** -self.alpha
        tokens = np.full(loss.size, tokens_per_domain)
        return EvalStats(step=step, tokens=tokens, loss_sum=loss * tokens)


def build(method: str, domain_ids: np.ndarray, names: list[str], global_batch: int, steps: int | None, seed: int,
          new_rows: int, short: bool = False, params: dict | None = None):
    from curricula.methods import DataInfo, RunInfo, load_recipe

    recipe = {**RECIPES[method], **(SHORT.get(method, {}) if short else {}), **(params or {})}
    if method == "replay":
        recipe["new_rows"] = new_rows
    config = load_recipe(recipe)
    data = DataInfo(domain_ids, names, block_size=BLOCK_TOKENS, tokenizer=IDENTITY)
    run = RunInfo(global_batch, None if config.sets_steps else steps, seed, lookahead=2)
    return config.build(data, run)


def lfr_global_batch(blocks: int, steps: int) -> int:
    """The global batch that makes the bench's LFR plan (learn, focus 50 %, review, focus 70 %) about ``steps``."""
    return max(1, math.ceil(blocks * (1 + 0.5 + 1 + 0.3) / steps))


def run_method(method: str, steps: int, blocks: int, domains: int, global_batch: int, work: Path, seed: int = 0,
               short: bool = False, params: dict | None = None) -> dict:
    from curricula.methods import EpochRecords
    from hf_trainer_ext.sampler import CurriculumSampler

    if method == "lfr":
        global_batch = lfr_global_batch(blocks, steps)
    domain_ids = np.repeat(np.arange(domains, dtype=np.int32), -(-blocks // domains))[:blocks]
    names = [f"d{d:02d}" for d in range(domains)]
    synth = Synthetic(domains, seed)
    rss0 = rss_bytes()
    t_build = time.perf_counter()
    cur = build(method, domain_ids, names, global_batch, steps, seed, new_rows=blocks * 3 // 4, short=short,
                params=params)
    cur.open_logs(work / "run", 0)
    build_s = time.perf_counter() - t_build
    for_epochs = cur.epoch_steps()
    total = sum(for_epochs)
    sampler = CurriculumSampler(cur)
    first_n = max(1, total // 100)
    t_first = t_last = 0.0
    boundaries, global_step = [], 0
    dom_of = domain_ids
    records = "block_records" in cur.needs
    stats_needed = "step_stats" in cur.needs
    evals_needed, evals = "eval_stats" in cur.needs, 0
    ckpt = work / f"checkpoint-{total - 1}" / "curriculum"
    cur.start_epoch(0)
    t_loop = time.perf_counter()
    for epoch, n_steps in enumerate(for_epochs):
        ids_epoch = np.empty(n_steps * global_batch, dtype=np.int64) if records else None
        it = iter(sampler)
        for s in range(n_steps):
            t0 = time.perf_counter()
            batch = np.fromiter(it, dtype=np.int64, count=global_batch)  # what the DataLoader pulls for one step
            global_step += 1
            if stats_needed or records:
                real = batch[batch < blocks]
                if records:
                    ids_epoch[s * global_batch: s * global_batch + real.size] = real
                    ids_epoch[s * global_batch + real.size: (s + 1) * global_batch] = -1
                if stats_needed:
                    counts = np.bincount(dom_of[real], minlength=domains).astype(np.float64)
                    cur.observe_step(synth.step(global_step, counts))
                    if evals_needed and cur.wants_eval(global_step):
                        cur.observe_eval(synth.evaluate(global_step))
                        evals += 1
                    cur.loss_weights()
            dt = time.perf_counter() - t0
            if global_step == total - 1:  # the trainer's checkpoint one step before the end: state after the step
                t_save = time.perf_counter()
                cur.flush_logs()
                cur.save(ckpt, global_step)
                save_s = time.perf_counter() - t_save
                ckpt_bytes = folder_bytes(ckpt)
            if global_step == total:
                last_batch = batch
            if global_step <= first_n:
                t_first += dt
            elif global_step > total - first_n:
                t_last += dt
        t0 = time.perf_counter()
        epoch_records = None
        if records:
            keep = ids_epoch >= 0
            ids = ids_epoch[keep]
            loss = synth.rng.random(ids.size, dtype=np.float32) * 4 + 2
            epoch_records = EpochRecords(ids, dom_of[ids].astype(np.int32), np.repeat(np.arange(n_steps) + 1,
                                         global_batch)[keep] + global_step - n_steps, loss)
        cur.end_epoch(epoch_records)
        if epoch + 1 < len(for_epochs):
            cur.start_epoch(epoch + 1)
        boundaries.append(time.perf_counter() - t0)
        del ids_epoch, epoch_records
        gc.collect()
    rss1 = rss_bytes()
    loop_s = time.perf_counter() - t_loop
    del cur, sampler
    gc.collect()
    # resume at the last step: a new method built from its config, the checkpoint loaded, the next batch drawn
    t0 = time.perf_counter()
    again = build(method, domain_ids, names, global_batch, steps, seed, new_rows=blocks * 3 // 4, short=short,
                  params=params)
    again.load(ckpt)
    again.open_logs(work / "run", total - 1)
    epoch, done = again.position(total - 1)
    resumed_batch = next(again.batches(epoch, done))
    resume_s = time.perf_counter() - t0
    if not np.array_equal(resumed_batch, last_batch):
        raise AssertionError(f"{method}: the resumed run's next batch differs from the uninterrupted run's")
    return {"method": method, "steps": total, "blocks": blocks, "global_batch": global_batch,
            "us_first": 1e6 * t_first / first_n, "us_last": 1e6 * t_last / first_n,
            "rss_growth": rss1 - rss0, "checkpoint_bytes": ckpt_bytes, "save_s": save_s, "resume_s": resume_s,
            "boundary_s": boundaries, "build_s": build_s, "us_mean": 1e6 * loop_s / total, "evals": evals}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="all", help=f"one of {', '.join(METHODS)}, or all")
    ap.add_argument("--steps", type=int, default=10_000, help="optimizer steps to simulate")
    ap.add_argument("--blocks", type=int, default=None,
                    help="blocks in the data (default: 100 per domain for mixtures; 10 M for LFR)")
    ap.add_argument("--domains", type=int, default=20)
    ap.add_argument("--global-batch", type=int, default=32, help="blocks per optimizer step (LFR: from --steps)")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one, deleted)")
    ap.add_argument("--short", action="store_true",
                    help="a quick pass (LFR at 100 k blocks, ADO's refits from 8 starts), for the tests")
    ap.add_argument("--params", type=json.loads, default={},
                    help="JSON overrides of the method's recipe, e.g. '{\"fit_starts\": 8}' for ADO's cheapest refits")
    a = ap.parse_args(argv)
    from curricula.methods import METHODS as REGISTERED

    methods = [m for m in METHODS if m in REGISTERED] if a.method == "all" else [a.method]
    unknown = [m for m in methods if m not in RECIPES]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    work = a.work or Path(tempfile.mkdtemp(prefix="bench-horizon-"))
    print(f"numpy {np.__version__}, {len(os.sched_getaffinity(0))} CPUs, steps {a.steps:,}, domains {a.domains}")
    lines = []
    try:
        for method in methods:
            blocks = a.blocks or ((100_000 if a.short else 10_000_000) if method == "lfr" else 100 * a.domains)
            folder = work / method
            folder.mkdir(parents=True, exist_ok=True)
            r = run_method(method, a.steps, blocks, a.domains, a.global_batch, folder, short=a.short, params=a.params)
            b = r["boundary_s"]
            print(f"{method}: {r['steps']:,} steps over {r['blocks']:,} blocks (global batch {r['global_batch']}): "
                  f"{r['us_first']:.1f} us/step first 1 %, {r['us_last']:.1f} us/step last 1 %; RSS growth "
                  f"{r['rss_growth'] / 2**20:+.1f} MiB; checkpoint {r['checkpoint_bytes']:,} B saved in "
                  f"{r['save_s']:.3f} s; resume {r['resume_s']:.3f} s; build {r['build_s']:.2f} s; "
                  f"{r['us_mean']:.1f} us/step over the whole run"
                  + (f"; {r['evals']} held-out measurements" if r["evals"] else "")
                  + (f"; {len(b)} boundaries, max {max(b):.2f} s" if len(b) > 1 else ""), flush=True)
            lines.append(f"horizon method={method} steps={r['steps']} us_per_step_first={r['us_first']:.3f} "
                         f"us_per_step_last={r['us_last']:.3f} checkpoint_bytes={r['checkpoint_bytes']} "
                         f"resume_s={r['resume_s']:.4f}")
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
