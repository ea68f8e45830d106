"""DoReMi proxy step time with a cached reference, with a live reference, and a plain training step, side by side.

    python benchmarks/bench_doremi.py [--steps 20] [--repeats 3] [--vocab gpt2|bpe] [--cap 200]

Data: the embedded sample's English corpus packed into 128-token blocks (``--cap`` blocks per domain). Models:
GPT-2 2 layers, d=128 (the proxy and the reference have the same size, as in the paper). Every run is a
``CurriculumTrainer`` drawing uniform domain mixtures; "plain" trains the plain loss, "cached" and "live" are
``CurriculumTrainer`` with the ``group_dro`` method and the reference losses read from the Arrow cache or computed by a reference forward.
Runs are interleaved (plain, cached, live, repeat); the median step time of each run after warm-up is taken, and the
best run of each kind is reported. Goal: cached <= 1.05x plain. Prints numbers; not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

if "MALLOC_MMAP_THRESHOLD_" not in os.environ:  # glibc reads these at start-up: re-exec with them set
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per run (after 3 warm-up steps)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--vocab", choices=["gpt2", "bpe"], default="gpt2", help="GPT-2 BPE (50,257) or an 8k BPE")
    ap.add_argument("--cap", type=int, default=200, help="blocks per domain")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--short", action="store_true", help="a few steps on a small vocabulary (what the tests run)")
    a = ap.parse_args()
    if a.short:
        a.steps, a.repeats, a.vocab, a.cap, a.batch = 2, 1, "bpe", 16, 4

    import numpy as np
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, TrainerCallback

    from curricula.data.build import build_from_sample
    from curricula.data.corpus import load_corpus
    from curricula.data.pack import PackConfig, load_blocks, pack_corpus, read_meta
    from curricula.data.tokenizers import train_bpe
    from hf_trainer_ext import CurriculumTrainer, CurriculumTrainingArguments
    from curricula.methods import GroupDROConfig
    from hf_trainer_ext.reference import score_reference

    torch.set_num_threads(os.cpu_count() or 1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-doremi-"))
    build_from_sample(tmp / "corpus")
    tok = "gpt2"
    if a.vocab == "bpe":
        train_bpe(load_corpus(tmp / "corpus" / "en")["train"]["text"], tmp / "bpe", vocab_size=1024 if a.short else 8192)
        tok = str(tmp / "bpe")
    pack_corpus(tmp / "corpus" / "en", tmp / "packed", PackConfig(tokenizer=tok, block_size=128, max_blocks_per_domain=a.cap))
    meta = read_meta(tmp / "packed")
    train = load_blocks(tmp / "packed", "train")
    identity, names = meta["tokenizer"], meta["domain_names"]

    def model(seed):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=128, n_head=2, n_positions=128,
                                          vocab_size=identity["vocab_size"], bos_token_id=identity["eos_id"],
                                          eos_token_id=identity["eos_id"]))

    reference = model(1)
    t0 = time.perf_counter()
    score_reference(reference, train, tmp / "cache", batch_size=32, tokenizer_identity=identity)
    scoring = time.perf_counter() - t0

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self._t = [], 0.0

        def on_step_begin(self, args, state, control, **kw):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self._t)

    def run(kind: str) -> float:
        args = CurriculumTrainingArguments(
            output_dir=str(tmp / "out" / kind), overwrite_output_dir=True, max_steps=3 + a.steps, per_device_train_batch_size=a.batch,
            learning_rate=1e-3, domain_weights="uniform" if kind == "plain" else None, report_to="none", save_strategy="no", use_cpu=True,
            disable_tqdm=True, logging_steps=10, seed=0)
        common = dict(model=model(2), args=args, train_dataset=train, domain_names=names)
        if kind == "plain":
            tr = CurriculumTrainer(**common)
        elif kind == "cached":
            tr = CurriculumTrainer(**common, curriculum=GroupDROConfig(), reference_losses=tmp / "cache",
                                   tokenizer_identity=identity)
        else:
            tr = CurriculumTrainer(**common, curriculum=GroupDROConfig(), reference_model=reference,
                                   tokenizer_identity=identity)
        timer = StepTimer()
        tr.add_callback(timer)
        tr.train()
        return float(np.median(timer.times[3:]))

    kinds = ["plain", "cached", "live"]
    best = {k: float("inf") for k in kinds}
    for r in range(a.repeats):
        for k in kinds:
            t = run(k)
            best[k] = min(best[k], t)
            print(f"  repeat {r + 1}: {k:6s} {t * 1000:8.1f} ms/step", flush=True)
    tokens = a.batch * 128
    print(f"\nvocab {identity['vocab_size']:,}, batch {a.batch} x 128 tokens, {os.cpu_count()} cores; "
          f"one-time reference scoring of {len(train):,} blocks: {scoring:.1f} s")
    print(f"{'run':8s} {'ms/step':>9s} {'tokens/s':>10s} {'vs plain':>9s}")
    for k in kinds:
        print(f"{k:8s} {best[k] * 1000:9.1f} {tokens / best[k]:10,.0f} {best[k] / best['plain']:9.3f}x")
    print(f"\ncached / plain = {best['cached'] / best['plain']:.3f} (goal <= 1.05); live / plain = "
          f"{best['live'] / best['plain']:.3f}")


if __name__ == "__main__":
    main()
