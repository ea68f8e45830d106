"""Training throughput of vanilla ``Trainer`` vs ``CurriculumTrainer`` (block-loss logging on), interleaved in one run.

    python benchmarks/bench_overhead.py [--packed DIR] [--repeats 3] [--steps 30] [--warmup 5] [--no-lfr]
                                        [--layers 2] [--width 128] [--heads 2] [--vocab 50257] [--batch 8]

Goal (issue): CurriculumTrainer with logging on costs <= 1 % tokens/s against vanilla Trainer.

Runs, each on a freshly initialised small GPT-2 (same seed, fp32, CPU, ``torch.set_num_threads(cores)``, default
dropout, ``model.loss_type = "ForCausalLM"`` for every run so all normalise the loss the same way), batch 8:

  vanilla   ``transformers.Trainer`` on the packed blocks' ``input_ids`` (a collator stacks them, labels = input_ids),
            ``logging_steps=10**9``;
  logging   ``CurriculumTrainer``, ``log_block_losses=True``, no curriculum: one per-token CE pass gives the loss and
            every block's mean loss (recorded on device), per-domain perplexity logged at ``logging_steps=10``;
  online    ``CurriculumTrainer`` with the one-run DoReMi (``doremi_online``): per-step excess loss over a cached
            reference (scored once, before the runs, by a second GPT-2), the Group-DRO update after every optimizer
            step and batches drawn from the weights (goal: <= 1.05x a plain step);
  odm, ado, aioli
            ``CurriculumTrainer`` with the online mixer's bundled recipe (the papers' defaults) on all blocks: its
            update after every optimizer step and batches drawn from its weights; Aioli also measures its held-out
            set (``--aioli-eval-blocks`` blocks, forward only) at its LearnParams segment ends, inside the loop
            (the p25 leaves those steps out, the mean includes them);
  lfr       ``CurriculumTrainer(curriculum="lfr")`` (learn, focus 50 %, review, 2 x focus 70 %) on a random subset of
            blocks (renumbered 0..N-1) just large enough for the plan to run warm-up + ``--steps`` steps, so its plan
            epochs are short (<= 13 steps at the defaults); its phase boundaries (gather, log, table update, next
            epoch's order) are timed separately.

vanilla and logging run ``max_steps = warmup + steps``; the LFR plan sets its own length. A callback stamps
``on_step_begin`` / ``on_step_end`` and every run is measured the same way over the steps after the warm-up:

  step  on_step_begin -> on_step_end: forward, loss, backward, clip, optimizer, scheduler;
  loop  on_step_end -> next on_step_end: the whole loop per step, also batch fetch + collation, callbacks and the
        logging at logging steps (what tokens/s sees). Intervals that cross a Trainer epoch boundary are left out
        (for LFR they contain the phase boundary, reported on its own).

The runs are interleaved (vanilla, logging, lfr; the order rotates every repeat) ``--repeats`` times in one process
(``gc.collect()`` between runs). The summary pools each kind's timed steps over the repeats and shows p25, median and
mean ms/step, tokens/s = batch * block_size / ms, and the overhead vs vanilla. p25 is the per-step cost without
disturbances; the mean is the throughput a run really gets (it includes logging steps and slow-step regimes).
This machine is shared: a step whose process CPU time / (wall * threads) is below ``--quiet`` (0.9) waited for other
processes and is left out of the summary (``steps`` = kept/total); if too many are, a warning says so. ``RSS/step``
is the growth of the process's resident memory per timed step (median over repeats), ``faults`` the mean number of
minor page faults per timed step (fresh memory touched: 4 KiB each). ``loss`` is Trainer's mean
training loss: vanilla and logging train the same blocks in the same order from the same init, so they must agree.

The script re-executes itself with MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ = 4 GiB when they are not set
(glibc reads them at process start; without them it returns the ~200 MB logits buffer to the OS every step, see
/work/shared/notes/hf-stack-facts.md section 4). Prints numbers; not a test.

Last run (after the recorder fix, see below): 2026-11-21, 2-core CPU, quiet machine, defaults, 134 s:

    ms/step over the timed steps (30 after 5 warm-up) of 3 interleaved repeats, pooled, steps with cpu >= 90% only; overhead vs vanilla
    run           loop p25  tok/s overhead  loop median  tok/s overhead    loop mean  tok/s overhead     step p25  tok/s overhead   steps  RSS/step faults     loss
    vanilla          364.6   2808                 369.0   2775                 370.8   2762                 363.8   2815            90/90     +0 MB      0 10.59626
    logging          368.4   2780   +1.02%        373.8   2740   +1.30%        377.4   2714   +1.78%        367.0   2790   +0.88%   90/90     +0 MB    209 10.59626
    lfr              369.9   2768   +1.45%        372.8   2747   +1.05%        376.4   2721   +1.52%        368.6   2778   +1.34%   96/96     +0 MB    524 10.61003
    vanilla vs logging mean training loss: max |diff| 1.53e-06 (same blocks, same order, same init)
    lfr phase boundaries: 15 over 3 runs, median 2.2 ms, max 4.9 ms (not in the per-step numbers)
    total 134 s; load average 1.86 1.58 1.60 (before: 1.56 1.40 1.54)

Before the fix, this benchmark measured logging at +10.6 % (p25) / +24 % (mean) with +138 MB RSS and ~35,600
page faults per step: BlockLossRecorder kept 4 small tensors per step alive, which landed in the hole of the freed
~200 MB logits buffer and forced a fresh allocation every step (and, without a plan, were never released). The
recorder now writes into preallocated buffers and keeps records only when a plan consumes them.

"""

from __future__ import annotations

import argparse
import os
import sys

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
_REEXEC_FLAG = "_BENCH_OVERHEAD_REEXECUTED"


def _reexec_with_malloc_env() -> None:
    """glibc reads the MALLOC_* variables once, at process start: re-run this script with them set."""
    missing = {k: v for k, v in MALLOC_ENV.items() if k not in os.environ}
    if missing and not os.environ.get(_REEXEC_FLAG):
        env = {**os.environ, **missing, _REEXEC_FLAG: "1"}
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


if __name__ == "__main__":
    _reexec_with_malloc_env()

import gc  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

KINDS = ("vanilla", "logging", "online", "odm", "ado", "aioli", "lfr")
MIXERS = ("odm", "ado", "aioli")


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return 0.0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packed", type=Path,
                    help="packed blocks (curricula pack); default: the embedded sample, English, packed with GPT-2")
    ap.add_argument("--block-size", type=int, default=128, help="block size when packing the sample (default 128)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--width", type=int, default=128, help="n_embd")
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=50257, help="model vocabulary; token ids are taken modulo it")
    ap.add_argument("--batch", type=int, default=8, help="per-device train batch size")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of each run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--logging-steps", type=int, default=10, help="logging_steps of the CurriculumTrainer runs")
    ap.add_argument("--lfr", action=argparse.BooleanOptionalAction, default=True, help="also time curriculum='lfr'")
    ap.add_argument("--online", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the one-run DoReMi (doremi_online) with a cached reference")
    ap.add_argument("--mixers", action=argparse.BooleanOptionalAction, default=True,
                    help=f"also time the online mixers ({', '.join(MIXERS)}) with their bundled recipes")
    ap.add_argument("--aioli-eval-blocks", type=int, default=40, help="Aioli's held-out set (blocks, every domain)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", type=float, default=0.9,
                    help="summarise only steps whose process CPU time / (wall * threads) reaches this (default 0.9)")
    ap.add_argument("--short", action="store_true", help="1 repeat of 2 steps on a tiny model (what the tests run)")
    a = ap.parse_args()
    if a.short:
        a.steps, a.warmup, a.repeats, a.layers, a.width, a.vocab, a.batch = 2, 1, 1, 1, 32, 512, 2
    return a


def main() -> None:
    args = parse_args()

    import datasets
    import numpy as np
    import torch
    import transformers
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    from hf_trainer_ext.arguments import CurriculumTrainingArguments
    from hf_trainer_ext.trainer import CurriculumTrainer

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-overhead-"))

    # ---- data -------------------------------------------------------------------------------------------------
    from curricula.data.pack import PackConfig, load_blocks, pack_corpus, read_meta

    packed = args.packed
    if packed is None:
        from curricula.data.build import build_from_sample

        build_from_sample(tmp / "corpus")
        packed = tmp / "packed"
        pack_corpus(tmp / "corpus" / "en", packed, PackConfig(tokenizer="gpt2", block_size=args.block_size),
                    splits=("train",))
    meta = read_meta(packed)
    domain_names = meta["domain_names"]
    blocks = load_blocks(packed, "train").select_columns(["block_id", "domain_id", "input_ids"])
    if args.vocab < meta["tokenizer"]["vocab_size"]:
        v = args.vocab
        blocks = blocks.with_format("numpy").map(
            lambda b: {"input_ids": b["input_ids"] % v}, batched=True, batch_size=4096).with_format(None)
    block_size = len(blocks[0]["input_ids"])
    tokens_per_step = args.batch * block_size
    vanilla_ds = blocks.select_columns(["input_ids"])

    def stack_collator(features):
        ids = torch.as_tensor(np.stack([np.asarray(f["input_ids"]) for f in features]), dtype=torch.long)
        return {"input_ids": ids, "labels": ids.clone()}

    # LFR: a random subset of blocks, renumbered 0..N-1, just long enough for warm-up + steps (+1 per boundary)
    lfr_ds, lfr_steps = None, 0
    if args.lfr:
        from curricula.methods import DataInfo, LFRConfig, RunInfo
        from curricula.methods import load_recipe

        config: LFRConfig = load_recipe("lfr")
        dom = np.asarray(blocks.with_format("numpy")["domain_id"])
        rng = np.random.default_rng(args.seed)
        want = args.warmup + args.steps
        n = args.batch
        while True:
            pick = np.sort(rng.permutation(len(blocks))[:n])
            state = config.build(DataInfo(dom[pick], domain_names), RunInfo(args.batch, None, args.seed))
            n_boundaries = len(state.epochs) - 1
            if state.total_steps >= want + n_boundaries or n >= len(blocks):
                break
            n += args.batch
        lfr_steps = state.total_steps
        lfr_ds = (blocks.select(pick.tolist()).flatten_indices().remove_columns(["block_id"])
                  .add_column("block_id", np.arange(len(pick), dtype=np.int64)))

    print(f"data {packed}: {len(blocks):,} blocks x {block_size} tokens, {len(domain_names)} domains"
          + (f"; lfr on {len(lfr_ds):,} of them ({lfr_steps} plan steps)" if lfr_ds is not None else ""))

    # ---- model and runs ---------------------------------------------------------------------------------------
    cfg = GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=args.heads, n_positions=block_size,
                     vocab_size=args.vocab)

    def make_model():
        torch.manual_seed(args.seed)
        model = GPT2LMHeadModel(cfg)
        model.loss_type = "ForCausalLM"  # GPT-2 leaves it unset: Trainer would count B*T loss tokens, not B*(T-1)
        return model

    cache = None
    if args.online:  # the reference's per-token losses, scored once (not timed)
        from hf_trainer_ext.reference import score_reference

        torch.manual_seed(args.seed + 1)
        reference = GPT2LMHeadModel(cfg)
        # a random subset (renumbered 0..N-1), 4x the blocks the run trains: scoring all of them would take minutes
        pick = np.random.default_rng(args.seed).permutation(len(blocks))[:4 * args.batch * (args.warmup + args.steps)]
        dom_all = np.asarray(blocks.with_format("numpy")["domain_id"])  # every domain keeps blocks (uniform weights)
        pick = np.union1d(pick, np.unique(dom_all, return_index=True)[1])
        online_ds = (blocks.select(pick.tolist()).flatten_indices().remove_columns(["block_id"])
                     .add_column("block_id", np.arange(len(pick), dtype=np.int64)))
        t = time.perf_counter()
        cache = score_reference(reference, online_ds, tmp / "reference", batch_size=32,
                                tokenizer_identity=meta["tokenizer"]).parent
        print(f"reference scored once: {len(online_ds):,} blocks in {time.perf_counter() - t:.1f} s", flush=True)
        del reference

    n_params = sum(p.numel() for p in make_model().parameters())
    print(f"model GPT-2 {args.layers} layers x {args.width} (heads {args.heads}), vocab {args.vocab}, "
          f"{n_params / 1e6:.2f} M params, fp32; batch {args.batch} x {block_size} = {tokens_per_step} tokens/step; "
          f"{torch.get_num_threads()} threads on {os.cpu_count()} cores; "
          + " ".join(f"{k}={os.environ.get(k, 'unset')}" for k in MALLOC_ENV), flush=True)

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.begin, self.end, self.cpu, self.rss, self.faults, self.epoch_first = [], [], [], [], [], set()

        def on_epoch_begin(self, a, state, control, **kw):
            self.epoch_first.add(len(self.end))  # index of the epoch's first step

        def on_step_begin(self, a, state, control, **kw):
            self.begin.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            self.end.append(time.perf_counter())
            self.cpu.append(time.process_time())
            self.rss.append(_rss_mb())
            self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)

        def intervals(self, warmup: int) -> dict[str, list[float]]:
            """Per timed step k: step (begin -> end), loop (previous end -> end) and cpu, the process's CPU time over
            the loop interval / (wall * threads): below ~0.9 the step waited, mostly for other processes."""
            ks = [k for k in range(max(warmup, 1), len(self.end)) if k not in self.epoch_first]
            loop = [self.end[k] - self.end[k - 1] for k in ks]
            return {"step": [self.end[k] - self.begin[k] for k in ks], "loop": loop,
                    "cpu": [(self.cpu[k] - self.cpu[k - 1]) / (w * args.threads) for k, w in zip(ks, loop)],
                    "rss": (self.rss[-1] - self.rss[warmup - 1]) / (len(self.rss) - warmup) if warmup > 0 else 0.0,
                    "faults": [self.faults[k] - self.faults[k - 1] for k in ks]}

    def run(kind: str, rep: int) -> dict:
        common = dict(output_dir=str(tmp / f"{kind}-{rep}"), per_device_train_batch_size=args.batch, seed=args.seed,
                      report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True)
        timer = StepTimer()
        if kind == "vanilla":
            targs = TrainingArguments(max_steps=args.warmup + args.steps, logging_steps=10**9, **common)
            trainer = Trainer(model=make_model(), args=targs, train_dataset=vanilla_ds, data_collator=stack_collator,
                              callbacks=[timer])
        elif kind == "logging":
            targs = CurriculumTrainingArguments(max_steps=args.warmup + args.steps, logging_steps=args.logging_steps,
                                                **common)
            trainer = CurriculumTrainer(make_model(), targs, train_dataset=blocks, domain_names=domain_names,
                                        callbacks=[timer])
            assert trainer.block_logging
        elif kind == "online":
            from curricula.methods import DoReMiOnlineConfig

            targs = CurriculumTrainingArguments(max_steps=args.warmup + args.steps, logging_steps=args.logging_steps,
                                                **common)
            trainer = CurriculumTrainer(make_model(), targs, train_dataset=online_ds, domain_names=domain_names,
                                        curriculum=DoReMiOnlineConfig(), reference_losses=cache,
                                        tokenizer_identity=meta["tokenizer"], callbacks=[timer])
        elif kind in MIXERS:
            from curricula.data.packed import per_domain_subset
            from curricula.methods import load_recipe

            targs = CurriculumTrainingArguments(max_steps=args.warmup + args.steps, logging_steps=args.logging_steps,
                                                **common)
            held_out = per_domain_subset(blocks, args.aioli_eval_blocks) if kind == "aioli" else None
            trainer = CurriculumTrainer(make_model(), targs, train_dataset=blocks, domain_names=domain_names,
                                        curriculum=load_recipe(kind), tokenizer_identity=meta["tokenizer"],
                                        mixing_eval_dataset=held_out, callbacks=[timer])
        else:
            targs = CurriculumTrainingArguments(curriculum="lfr", logging_steps=args.logging_steps, **common)
            trainer = CurriculumTrainer(make_model(), targs, train_dataset=lfr_ds, callbacks=[timer])
        trainer.remove_callback(PrinterCallback)  # disable_tqdm prints every log line; keep the output a table
        boundary = []
        if kind == "lfr":
            inner = trainer.finish_epoch

            def timed_boundary():
                t = time.perf_counter()
                inner()
                boundary.append(time.perf_counter() - t)

            trainer.finish_epoch = timed_boundary
        t0 = time.perf_counter()
        out = trainer.train()
        wall = time.perf_counter() - t0
        del trainer
        gc.collect()  # the trainer and its callbacks form cycles: free this run's memory before the next run
        return {**timer.intervals(args.warmup), "loss": out.training_loss, "steps": len(timer.end), "wall": wall,
                "boundary": boundary}

    def p25(xs):
        return float(np.percentile(xs, 25))

    kinds = [k for k in KINDS if (k != "lfr" or lfr_ds is not None) and (k != "online" or cache is not None)
             and (k not in MIXERS or args.mixers)]
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    t_start, load_before = time.perf_counter(), _load()
    for rep in range(args.repeats):
        order = kinds[rep % len(kinds):] + kinds[: rep % len(kinds)]
        for kind in order:
            r = run(kind, rep)
            results[kind].append(r)
            extra = f", {len(r['boundary'])} boundaries {1e3 * sum(r['boundary']):.0f} ms" if r["boundary"] else ""
            print(f"  repeat {rep} {kind:8s} loop p25 {1e3 * p25(r['loop']):6.1f} median "
                  f"{1e3 * statistics.median(r['loop']):6.1f} mean {1e3 * statistics.fmean(r['loop']):6.1f} ms/step, "
                  f"cpu {100 * statistics.median(r['cpu']):3.0f} %  ({r['steps']} steps, {len(r['loop'])} timed, "
                  f"RSS {r['rss']:+.0f} MB/step, {statistics.fmean(r['faults']):.0f} faults/step, "
                  f"train {r['wall']:.1f} s, loss {r['loss']:.5f}{extra})", flush=True)

    # ---- summary: pooled over repeats, steps that had the CPUs only (other processes share this machine) ---------
    def pooled(kind, key, quiet):
        return [x for r in results[kind] for x, c in zip(r[key], r["cpu"]) if c >= quiet]

    quiet = args.quiet
    if any(len(pooled(k, "loop", quiet)) < max(3, len(pooled(k, "loop", 0.0)) // 3) for k in kinds):
        print(f"\nWARNING: the machine was busy (fewer than a third of some run's steps had cpu >= {quiet:.0%}); "
              "using all steps, the numbers below are unreliable")
        quiet = 0.0
    stats = {("loop", "p25"): p25, ("loop", "median"): statistics.median, ("loop", "mean"): statistics.fmean,
             ("step", "p25"): p25}
    print(f"\nms/step over the timed steps ({args.steps} after {args.warmup} warm-up) of {args.repeats} interleaved "
          f"repeats, pooled, steps with cpu >= {quiet:.0%} only; overhead vs vanilla")
    print(f"{'run':9s}" + "".join(f" {key + ' ' + name:>12s} {'tok/s':>6s} {'overhead':>8s}" for key, name in stats)
          + f" {'steps':>7s} {'RSS/step':>9s} {'faults':>6s} {'loss':>8s}")
    for kind in kinds:
        row = f"{kind:9s}"
        for (key, name), fn in stats.items():
            ms = fn(pooled(kind, key, quiet))
            ov = "" if kind == "vanilla" else f"{100 * (ms / fn(pooled('vanilla', key, quiet)) - 1):+.2f}%"
            row += f" {1e3 * ms:12.1f} {tokens_per_step / ms:6.0f} {ov:>8s}"
        n = f"{len(pooled(kind, 'loop', quiet))}/{len(pooled(kind, 'loop', 0.0))}"
        rss = statistics.median(r["rss"] for r in results[kind])
        faults = statistics.fmean(pooled(kind, "faults", quiet))
        print(row + f" {n:>7s} {rss:+6.0f} MB {faults:6.0f} {statistics.median(r['loss'] for r in results[kind]):8.5f}")
    if "logging" in results:
        dl = max(abs(a["loss"] - b["loss"]) for a, b in zip(results["logging"], results["vanilla"]))
        print(f"vanilla vs logging mean training loss: max |diff| {dl:.2e} (same blocks, same order, same init)")
    if "lfr" in results:
        bs = [b for r in results["lfr"] for b in r["boundary"]]
        print(f"lfr phase boundaries: {len(bs)} over {args.repeats} runs, median {1e3 * statistics.median(bs):.1f} ms, "
              f"max {1e3 * max(bs):.1f} ms (not in the per-step numbers)")
    print(f"total {time.perf_counter() - t_start:.0f} s; load average {_load()} (before: {load_before})")


if __name__ == "__main__":
    main()
