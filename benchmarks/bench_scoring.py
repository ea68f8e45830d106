"""Reference scoring for DoReMi's cache at 1 and 2 processes (each scores its share; the main one assembles).

    python benchmarks/bench_scoring.py [--blocks 2000] [--vocab-bpe]

Packs the embedded sample (GPT-2 tokenizer, 128-token blocks, the first --blocks blocks), builds a 2-layer GPT-2 as
the reference, and times ``score_reference`` under ``torchrun --nproc_per_node 1`` and ``2`` (1 thread per process;
the time is measured inside the script, without process start-up). Prints numbers; not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def child(work: Path) -> None:
    import torch

    from curricula.data.packed import PackedData
    from hf_trainer_ext.reference import model_for_data, score_reference

    torch.set_num_threads(1)
    data = PackedData.load(work / "packed")
    model = model_for_data(data.meta, seed=0, n_layer=2, n_embd=128, n_head=2)
    import torch.distributed as dist

    if "RANK" in os.environ:
        dist.init_process_group("gloo")
    t = time.perf_counter()
    score_reference(model, data.train, work / f"cache-{os.environ.get('WORLD_SIZE', '1')}", batch_size=16)
    elapsed = time.perf_counter() - t
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"world": int(os.environ.get("WORLD_SIZE", "1")), "seconds": elapsed, "blocks": len(data.train)}))
    if dist.is_initialized():
        dist.destroy_process_group()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=2000, help="blocks to score (the sample's first ones, per domain)")
    ap.add_argument("--work", type=Path, help="working folder (default: a temporary one)")
    ap.add_argument("--short", action="store_true", help="64 blocks (what the tests run)")
    a = ap.parse_args()
    if a.short:
        a.blocks = 64
    if os.environ.get("_BENCH_SCORING_CHILD"):
        return child(a.work)
    from curricula.data.build import build_from_sample
    from curricula.data.pack import PackConfig, pack_corpus

    work = a.work or Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    build_from_sample(work / "corpus")
    pack_corpus(work / "corpus" / "en", work / "packed", PackConfig(tokenizer="gpt2", block_size=128,
                max_blocks_per_domain=a.blocks // 7), splits=("train",))
    env = {**os.environ, "_BENCH_SCORING_CHILD": "1", "OMP_NUM_THREADS": "1"}
    rows = []
    for world in (1, 2):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world),
               __file__, "--work", str(work)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        rows.append(json.loads([x for x in out.splitlines() if x.startswith("{")][-1]))
    base = rows[0]["seconds"]
    print(f"reference scoring of {rows[0]['blocks']:,} blocks x 128 tokens (GPT-2 vocab, 2 layers x 128), 1 thread/process")
    for r in rows:
        print(f"  {r['world']} process(es): {r['seconds']:6.1f} s  ({base / r['seconds']:.2f}x)")


if __name__ == "__main__":
    main()
