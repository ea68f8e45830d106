"""Tokenize+pack throughput as a ratio to raw tiktoken encoding of the same text, measured side by side.

    python benchmarks/bench_pack.py [--corpus data/corpus/en] [--block-size 128] [--repeats 3]

Without --corpus it builds the embedded sample's English corpus in a temporary folder. Runs are interleaved
(raw tiktoken on n threads; pack with n tokenizer threads in one process; pack with n datasets.map processes; repeat)
and the best of each is reported; the goal is a ratio >= 0.8 per core. "pack" is the library's whole per-split work: tokenize through datasets.map (Arrow in,
Arrow out), compute block boundaries, slice blocks through a second map, save_to_disk.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, help="a corpus folder (default: the embedded sample, English)")
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--short", action="store_true", help="1 repeat, 1 process (what the tests run)")
    args = ap.parse_args()
    if args.short:
        args.repeats, args.procs = 1, [1]

    import datasets

    from curricula.data.build import build_from_sample
    from curricula.data.corpus import load_corpus
    from curricula.data.pack import PackConfig, pack_dataset
    from curricula.data.tokenizers import load_tokenizer

    datasets.disable_progress_bars()
    tmp = Path(tempfile.mkdtemp(prefix="bench-pack-"))
    corpus = args.corpus
    if corpus is None:
        build_from_sample(tmp / "corpus")
        corpus = tmp / "corpus" / "en"
    data = load_corpus(corpus)["train"]
    texts = data["text"]
    domains = sorted(set(data["domain"]))
    mb = sum(len(t.encode()) for t in texts) / 1e6
    tok = load_tokenizer("gpt2")
    print(f"corpus {corpus}: {len(texts):,} documents, {mb:.1f} MB, {len(domains)} domains; "
          f"block_size {args.block_size}; {os.cpu_count()} cores", flush=True)

    def raw(threads: int) -> tuple[float, int]:
        t = time.perf_counter()
        ids = tok.encode_batch(texts, num_threads=threads)
        return time.perf_counter() - t, sum(map(len, ids))

    def pack(procs: int, threads: int) -> tuple[float, int]:
        cfg = PackConfig(tokenizer="gpt2", block_size=args.block_size, num_proc=procs, num_threads=threads)
        t = time.perf_counter()
        stats = pack_dataset(data, domains, cfg, tmp / f"packed{procs}x{threads}", "train", "bench")
        return time.perf_counter() - t, stats["tokens"] - stats["documents"]  # tokens without the EOS separators

    raw(1)  # warm up: tokenizer load, page cache
    pack(1, 1)
    runs = []
    for p in args.procs:
        runs.append((p, f"raw tiktoken, {p} thread(s)", lambda p=p: raw(p)))
        runs.append((p, f"pack, num_threads={p}", lambda p=p: pack(1, p)))
        if p > 1:
            runs.append((p, f"pack, num_proc={p}", lambda p=p: pack(p, 1)))
    best: dict[str, tuple[float, int]] = {}
    for r in range(args.repeats):
        for _, name, fn in runs:
            secs, ntok = fn()
            if name not in best or secs < best[name][0]:
                best[name] = (secs, ntok)
            print(f"  repeat {r + 1}: {name:30s} {secs:7.2f} s", flush=True)

    print(f"\n{'run':32s} {'seconds':>8s} {'MB/s':>8s} {'tokens/s':>12s}")
    for name, (secs, ntok) in best.items():
        print(f"{name:32s} {secs:8.2f} {mb / secs:8.2f} {ntok / secs:12,.0f}")
    print()
    for p, name, _ in runs:
        if name.startswith("pack"):
            r_secs, r_tok = best[f"raw tiktoken, {p} thread(s)"]
            p_secs, p_tok = best[name]
            assert r_tok == p_tok, (r_tok, p_tok)
            print(f"ratio tokenize+pack / raw tiktoken at {p} core(s), {name:22s}: {r_secs / p_secs:.3f}  (goal >= 0.8)")


if __name__ == "__main__":
    sys.exit(main())
