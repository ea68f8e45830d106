"""Phase-boundary rewrite of the LFR index table at 10 M and 100 M blocks (goal: <= 2 s in total at 100 M).

    python benchmarks/bench_rewrite.py [--sizes 10000000 100000000] [--rounds 2] [--dir /tmp]

A rewrite is what happens between a review (or learn) epoch and the next focus epoch (the deciding process's part):
  update        record a full epoch's losses (every block once, in the epoch's shuffled order)
  select_focus  drop the 50 % lowest-perplexity blocks (partition threshold + exact tie fix)
  set_eligible  write the kept ids into the eligible column
  save          atomic Arrow IPC write (tmp file + os.replace)
Each size runs ``--rounds`` rewrites on one table (epochs 1, 2, ...): round 1 pays for first-touch page faults of
fresh buffers, later rounds show a long run's steady state. Before each round the benchmark calls ``os.sync()``
(untimed): epochs are far apart in training, so a save should not wait for the previous round's file to be written
back (``--no-sync`` shows that case). Timed for information only, outside the rewrite: ``order`` (next epoch's
shuffled ids, materialised: training never does), ``load`` (memory-mapped reopen), and "raw write", the same bytes
written with plain file writes right after ``save``, i.e. the storage's floor for it. Then the boundary end to end as
a multi-process run pays it: decide, share the eligible set with the node, adopt it, draw the next epoch's first batch.
Prints numbers; not a test. Run with MALLOC_MMAP_THRESHOLD_=4294967296 (as the Makefile exports) so glibc reuses
large buffers instead of returning them to the OS.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def _clock(timings: dict, name: str, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    timings[name] = time.perf_counter() - t0
    return out


def _raw_write(table, path: Path) -> float:
    """Seconds to write the same column bytes with plain file writes: the medium's floor for ``save``."""
    t0 = time.perf_counter()
    with open(path, "wb") as f:
        for col in table.to_arrow().columns:
            for buf in col.chunk(0).buffers():
                if buf is not None:
                    f.write(memoryview(buf))
    dt = time.perf_counter() - t0
    path.unlink()
    return dt


def run_size(n: int, rounds: int, n_domains: int, folder: Path, sync: bool, seed: int = 0) -> None:
    from curricula.methods.lfr import IndexTable, select_focus

    rng = np.random.default_rng(seed)
    path = folder / f"bench-index-{n}.arrow"
    t0 = time.perf_counter()
    table = IndexTable.new(np.repeat(np.arange(n_domains, dtype=np.int32), -(-n // n_domains))[:n])
    setup: dict[str, float] = {}
    ids = _clock(setup, "order", table.order, seed, 0)
    _clock(setup, "update(learn)", table.update, ids, rng.random(n, dtype=np.float32) * 6 + 1, 0)
    print(f"\n== {n:,} blocks ({n_domains} domains), setup {time.perf_counter() - t0:.1f} s: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in setup.items()))
    steps = ("update", "select_focus", "set_eligible", "save")
    print(f"{'round':>5} " + " ".join(f"{s:>13}" for s in steps) + f" {'total':>8} {'kept':>12} {'raw write':>10} {'load avg':>8}")
    for r in range(1, rounds + 1):
        del ids
        ids = table.order(seed, r)  # the epoch just trained (review: every block, shuffled)
        losses = rng.random(n, dtype=np.float32) * 6 + 1
        gc.collect()
        if sync:  # untimed: start each round with the previous round's file written back, as after a real epoch
            os.sync()
        tm: dict[str, float] = {}
        _clock(tm, "update", table.update, ids, losses, r)
        kept, report = _clock(tm, "select_focus", select_focus, table, 50)
        _clock(tm, "set_eligible", table.set_eligible, kept)
        _clock(tm, "save", table.save, path)
        total = sum(tm.values())
        raw = _raw_write(table, folder / "raw.bin")
        print(f"{r:>5} " + " ".join(f"{tm[s]:>11.3f} s" for s in steps) + f" {total:>6.3f} s {report.n_kept:>12,}"
              f" {raw:>8.3f} s {os.getloadavg()[0]:>8.2f}")
        assert report.n_kept == n - n // 2
        del kept, losses
        table.set_all_eligible()
    info: dict[str, float] = {}
    loaded = _clock(info, "load (mmap)", IndexTable.load, path)
    assert loaded.n == n
    # what a boundary costs end to end in a multi-process run (hf_trainer_ext/boundary.py PhaseBoundary.run): the
    # deciding process of a node updates, selects and writes the eligible set, bit-packed, for the node
    # (LFRCurriculum.save_shared); every process reads it (adopt_shared); the next epoch's order is evaluated lazily
    # (curricula/methods/lfr/order.py), so the boundary pays only for the first global batch of it. The curriculum-log
    # copy of the table is written in the background meanwhile.
    from curricula.methods.lfr.order import EpochOrder, EpochStream

    shm = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else folder
    e2e: dict[str, float] = {}
    ids = table.order(seed, rounds + 1)
    losses = rng.random(n, dtype=np.float32) * 6 + 1
    follower = IndexTable.new(table.domain_id)  # another process of the node: it only follows the decisions
    gc.collect()
    t_all = time.perf_counter()
    _clock(e2e, "update", table.update, ids, losses, rounds + 1)
    kept, _ = _clock(e2e, "select_focus", select_focus, table, 50)
    _clock(e2e, "set_eligible", table.set_eligible, kept)
    shared_path = shm / f"bench-shared-{n}.bits"
    _clock(e2e, "share (node copy)", lambda: shared_path.write_bytes(np.packbits(table.eligible).tobytes()))
    _clock(e2e, "adopt (every process)", lambda: follower.set_eligible(
        np.unpackbits(np.frombuffer(shared_path.read_bytes(), np.uint8), count=n).astype(bool)))
    stream = EpochStream(EpochOrder(follower.eligible, seed, rounds + 2), -(-follower.n_eligible // 512), 512, 2)
    first = _clock(e2e, "first batch (next epoch)", next, stream.batches())
    boundary = time.perf_counter() - t_all
    t_bg = time.perf_counter()
    table.save(path)
    background = time.perf_counter() - t_bg
    private = sum(a.nbytes for a in table._c.values())
    follower_private = sum(a.nbytes for a in follower._c.values())
    print(f"boundary end to end {boundary:.2f} s (" + ", ".join(f"{k} {v:.2f} s" for k, v in e2e.items())
          + f"); the log copy of the table in the background: {background:.2f} s")
    print(f"per-process memory: the deciding process's table {private / n:.1f} B/block ({private / 1e9:.2f} GB), "
          f"a following process's {follower_private / n:.1f} B/block (domain and eligible columns only); the "
          f"node's shared file {shared_path.stat().st_size / 1e6:.1f} MB; the epoch order: none (evaluated "
          f"{first.size} slots at a time); Python objects per block: none")
    mapped = order = None
    del loaded, mapped, order, kept, losses
    shared_path.unlink()
    del follower, stream
    size_gb = path.stat().st_size / 1e9
    _clock(info, "order (next epoch)", table.order, seed, rounds + 1)
    print(f"file {size_gb:.2f} GB; " + ", ".join(f"{k} {v:.3f} s" for k, v in info.items()))
    del table, ids
    gc.collect()
    path.unlink()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000_000, 100_000_000])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--domains", type=int, default=22)
    ap.add_argument("--no-sync", action="store_true", help="do not os.sync() (untimed) before each round")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the table (default: a temporary folder)")
    ap.add_argument("--short", action="store_true", help="100 k blocks, 1 round (what the tests run)")
    args = ap.parse_args()
    if args.short:
        args.sizes, args.rounds = [100_000], 1
    print(f"numpy {np.__version__}, {len(os.sched_getaffinity(0))} CPUs, "
          f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}")
    with tempfile.TemporaryDirectory(prefix="bench-rewrite-", dir=args.dir) as d:
        for n in args.sizes:
            run_size(n, args.rounds, args.domains, Path(d), sync=not args.no_sync)
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.1f} GB")


if __name__ == "__main__":
    main()
