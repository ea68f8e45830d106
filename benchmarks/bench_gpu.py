"""GPU check: bf16 training of a GPT-2 124M-sized model, vanilla ``Trainer`` vs ``CurriculumTrainer``, interleaved.

    python benchmarks/bench_gpu.py                 # on a CUDA GPU, the defaults fit in about 5 minutes on an H200
    python benchmarks/bench_gpu.py --dry-run       # tiny model, 64-token blocks, a few steps on CPU in fp32 (~30 s)
    benchmarks/gpu_check.sh [ARGS]                 # the prepared check: venv, nvidia-smi, timeout, runs/gpu_check.log

Never in CI (CI has no GPU); ``tests/integration/test_gpu_check.py`` runs the ``--dry-run`` path on CPU. Record the GPU numbers
in docs/results.md with the date and the device: the script ends with a markdown table ready to paste.

Runs, each on a freshly initialised GPT-2 (same seed; n_layer 12, n_embd 768, n_head 12, vocab 50257 = 124 M
parameters at the defaults; ``model.loss_type = "ForCausalLM"`` for every run so all normalise the loss alike):

  vanilla  ``transformers.Trainer`` on the blocks' ``input_ids`` (a collator stacks them, labels = input_ids),
           ``logging_steps=10**9``;
  plain    ``CurriculumTrainer``, no curriculum: per-block loss logging (one per-token CE pass gives the loss and
           every block's mean loss), per-domain perplexity logged every ``--logging-steps``;
  lfr      ``CurriculumTrainingArguments(curriculum="lfr")`` on a random subset of blocks (renumbered 0..N-1) just
           large enough for the plan to run warm-up + ``--steps`` steps (+1 per phase boundary);
  online   ``CurriculumTrainer`` with ``DoReMiOnlineConfig()`` (the one-run DoReMi) and ``reference_losses`` scored
           once, before any timing, by ``score_reference`` with a second GPT-2 (another seed) on the run's blocks.

On CUDA every run uses ``bf16=True`` (autocast, fp32 master weights) and ``attn_implementation="sdpa"``; a second
pass repeats vanilla and plain with ``TrainingArguments(torch_compile=True)`` (inductor). A compile failure or a
compile pass that would overrun ``--budget`` is reported, never fatal, and the eager table is printed before it
starts. ``--dry-run`` exercises the same code on CPU in fp32, its compile pass with dynamo's ``eager`` backend
(tracing only, no code generation).

Timing: a callback stamps ``on_step_begin`` / ``on_step_end`` after ``torch.cuda.synchronize()`` (on CUDA), so a
stamp is taken when the GPU has finished the work queued before it. Per timed step (after ``--warmup``):

  loop  on_step_end -> next on_step_end: everything a step costs (batch fetch and collation, forward, loss,
        backward, clip, optimizer, callbacks, the curriculum's per-step work, logging): what tokens/s sees;
  step  on_step_begin -> on_step_end: forward, loss, backward, clip, optimizer.

Intervals that cross a Trainer epoch boundary are left out (LFR's phase boundaries). The runs are interleaved
(vanilla, plain, lfr, online; the order rotates every repeat) ``--repeats`` times in one process; each kind's timed
steps are pooled over the repeats. Reported per kind: median ms/step (loop and step), tokens/s = batch * block_size /
median loop, the ratio to vanilla's median loop (the same process, side by side), the spread of that ratio over
the repeats, the peak memory (``torch.cuda.max_memory_allocated``, reset before every run; on CPU the process's
max RSS so far, which only grows) and Trainer's mean training loss (vanilla and plain train the same blocks in the
same order from the same init: they agree to bf16 noise on GPU, ~1e-6 on CPU).

Data: the embedded sample corpus (English, 7 domains) packed with the offline ``gpt2`` tokenizer into
``--block-size`` blocks (1,964 blocks of 1024 tokens); synthetic uniform token ids in 7 equal domains instead when
``--data synthetic``, or with ``--data auto`` (the default) when the sample cannot be packed or has fewer blocks
than the runs need. The output says which. Nothing is downloaded.

Time budget at the defaults (warm-up 10 + 40 timed steps, 3 repeats, batch 8 x 1024 tokens): 12 eager runs of
about 50 steps + 2 compiled runs. The issue estimates 0.1-0.2 s/step for 124 M at 8 x 1024 tokens in bf16; at
0.15 s/step that is about 12 x (7.5 s + ~3 s set-up) + 2 x (~60 s compile + 10 s) + ~30 s data/reference/imports
~ 300 s (5 minutes); at 0.3 s/step about 7 minutes. Eager repeats that would end past ``--budget`` (450 s) are
dropped (the table says how many ran), and so are compiled runs. The script prints its expected total before the runs, a projection after the first repeat and the
measured total at the end; ``benchmarks/gpu_check.sh`` kills it after 480 s.
"""

from __future__ import annotations

import argparse
import os
import sys

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
_REEXEC_FLAG = "_BENCH_GPU_REEXECUTED"
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _reexec_with_malloc_env() -> None:
    """glibc reads the MALLOC_* variables once, at process start: re-run this script with them set."""
    missing = {k: v for k, v in MALLOC_ENV.items() if k not in os.environ}
    if missing and not os.environ.get(_REEXEC_FLAG):
        env = {**os.environ, **missing, _REEXEC_FLAG: "1"}
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env)


if __name__ == "__main__":
    _reexec_with_malloc_env()

import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

T_PROCESS = time.perf_counter()
if REPO not in sys.path:  # run from a checkout with an interpreter that has the dependencies but not the package
    sys.path.insert(0, REPO)

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is downloaded: fail at once rather than wait for a network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

KINDS = ("vanilla", "plain", "lfr", "online")
COMPILE_KINDS = ("vanilla", "plain")
N_SYNTHETIC_DOMAINS = 7

DRY_RUN = dict(n_layer=2, n_embd=64, n_head=2, vocab=8192, block_size=64, batch=4, steps=6, warmup=2, repeats=1,
               logging_steps=4, threads=1)


class BudgetExceeded(Exception):
    """Raised by SIGALRM when a compiled run would overrun the time budget."""


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true",
                    help=f"tiny model on CPU in fp32 (n_layer {DRY_RUN['n_layer']}, n_embd {DRY_RUN['n_embd']}, "
                         f"n_head {DRY_RUN['n_head']}, vocab {DRY_RUN['vocab']}: ids modulo it), "
                         f"{DRY_RUN['block_size']}-token blocks, batch {DRY_RUN['batch']}, {DRY_RUN['warmup']} + "
                         f"{DRY_RUN['steps']} steps, 1 repeat, 1 torch thread, compile pass with dynamo's eager "
                         "backend; sizes given explicitly still win")
    g = ap.add_argument_group("model (GPT-2; the defaults are GPT-2 small, 124 M parameters)")
    g.add_argument("--n-layer", type=int, default=None, help="transformer layers (default 12)")
    g.add_argument("--n-embd", type=int, default=None, help="model width (default 768)")
    g.add_argument("--n-head", type=int, default=None, help="attention heads (default 12)")
    g.add_argument("--vocab", type=int, default=None,
                   help="model vocabulary; token ids are taken modulo it (default 50257, GPT-2's)")
    g.add_argument("--attn", default="sdpa", choices=["sdpa", "eager", "flash_attention_2"],
                   help="attn_implementation of every run (default %(default)s)")
    g = ap.add_argument_group("runs")
    g.add_argument("--block-size", type=int, default=None, help="tokens per block (default 1024)")
    g.add_argument("--batch", type=int, default=None, help="per-device train batch size, in blocks (default 8)")
    g.add_argument("--steps", type=int, default=None, help="timed optimizer steps per run (default 40)")
    g.add_argument("--warmup", type=int, default=None,
                   help="untimed steps at the start of every run (default 10; CUDA init, autotuning, compilation)")
    g.add_argument("--repeats", type=int, default=None, help="interleaved repeats of each kind (default 3)")
    g.add_argument("--kinds", default=",".join(KINDS),
                   help="comma-separated runs to time, among %(default)s (vanilla is always run: the baseline)")
    g.add_argument("--logging-steps", type=int, default=None,
                   help="logging_steps of the CurriculumTrainer runs (default 10; vanilla never logs)")
    g.add_argument("--lr", type=float, default=6e-4, help="learning rate (default %(default)s)")
    g.add_argument("--seed", type=int, default=0, help="model init and data order seed (default %(default)s)")
    g.add_argument("--data", default="auto", choices=["auto", "sample", "synthetic"],
                   help="training blocks: the embedded sample packed with the gpt2 tokenizer, synthetic token ids, "
                        "or auto: the sample when it packs and is large enough, else synthetic (default %(default)s)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch threads on CPU (default: every core; 1 in the dry run, which then does not slow "
                        "down 10x when another process shares the cores)")
    g.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"],
                   help="auto: cuda when available, else cpu (default %(default)s; --dry-run forces cpu)")
    g = ap.add_argument_group("torch.compile pass")
    g.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                   help="second pass of vanilla and plain with TrainingArguments(torch_compile=True); auto: on CUDA "
                        "and in the dry run (default %(default)s)")
    g.add_argument("--compile-backend", default=None,
                   help="torch_compile_backend (default inductor; eager in the dry run: tracing only)")
    g.add_argument("--compile-repeats", type=int, default=1, help="repeats of the compile pass (default %(default)s)")
    g = ap.add_argument_group("time")
    g.add_argument("--budget", type=float, default=450.0,
                   help="seconds since start after which no compiled run starts or continues (gpu_check.sh kills the "
                        "process at 480 s; the eager table is printed before the compile pass) (default %(default)s)")
    g.add_argument("--expect-step-s", type=float, default=None,
                   help="assumed seconds per step for the printed time estimate (default 0.15 on CUDA at the "
                        "defaults, scaled by model size and tokens per step; 0.02 in the dry run)")
    g.add_argument("--expect-compile-s", type=float, default=None,
                   help="assumed compile time of a compiled run for the estimate and the budget check "
                        "(default 60 with inductor, 10 otherwise)")
    ap.add_argument("--json", type=Path, default=None, help="also write every number to this JSON file")
    args = ap.parse_args(argv)

    defaults = dict(n_layer=12, n_embd=768, n_head=12, vocab=50257, block_size=1024, batch=8, steps=40, warmup=10,
                    repeats=3, logging_steps=10, threads=os.cpu_count() or 1)
    for key, value in (DRY_RUN if args.dry_run else defaults).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for key in defaults:
        if getattr(args, key) is None:
            setattr(args, key, defaults[key])
    if args.dry_run:
        args.device = "cpu"
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        ap.error(f"--kinds: unknown {bad}; choose among {list(KINDS)}")
    args.kinds = [k for k in KINDS if k in kinds or k == "vanilla"]
    if args.n_embd % args.n_head:
        ap.error(f"--n-embd {args.n_embd} is not a multiple of --n-head {args.n_head}")
    if min(args.steps, args.batch, args.repeats, args.block_size) < 1 or args.warmup < 1:
        ap.error("--steps, --batch, --repeats, --block-size must be >= 1 and --warmup >= 1 (the first step is "
                 "never timed)")
    return args


# ---- small helpers ------------------------------------------------------------------------------------------------

def _rss_max_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def _elapsed() -> float:
    return time.perf_counter() - T_PROCESS


# ---- data ---------------------------------------------------------------------------------------------------------

def _quiet_tqdm(tqdm, *a, **kw):
    kw["disable"] = True
    return tqdm(*a, **kw)


def build_data(args, tmp: Path, need_blocks: int):
    """(blocks, domain_names, tokenizer identity, a sentence saying what the data is)."""
    import datasets
    import numpy as np

    reason = ""
    if args.data in ("auto", "sample"):
        try:
            from curricula.data.build import build_from_sample
            from curricula.data.pack import PackConfig, load_blocks, pack_corpus, read_meta

            t = time.perf_counter()
            build_from_sample(tmp / "corpus")
            packed = tmp / "packed"
            pack_corpus(tmp / "corpus" / "en", packed, PackConfig(tokenizer="gpt2", block_size=args.block_size),
                        splits=("train",))
            meta = read_meta(packed)
            blocks = load_blocks(packed, "train").select_columns(["block_id", "domain_id", "input_ids"])
            took = time.perf_counter() - t
            if len(blocks) >= need_blocks or args.data == "sample":
                if args.vocab < meta["tokenizer"]["vocab_size"]:
                    v = args.vocab
                    blocks = blocks.with_format("numpy").map(
                        lambda b: {"input_ids": b["input_ids"] % v}, batched=True, batch_size=4096).with_format(None)
                note = (f"the embedded sample corpus (English, {len(meta['domain_names'])} domains) packed with the "
                        f"offline gpt2 tokenizer: {len(blocks):,} blocks x {args.block_size} tokens "
                        f"({took:.1f} s)" + (f", ids modulo {args.vocab}" if args.vocab < 50257 else ""))
                if len(blocks) < need_blocks:
                    note += f"; fewer than the {need_blocks:,} a run trains: blocks repeat within a run"
                return blocks, list(meta["domain_names"]), meta["tokenizer"], note
            reason = (f"the sample packs into {len(blocks):,} blocks of {args.block_size} tokens, fewer than the "
                      f"{need_blocks:,} the runs need")
        except Exception as exc:  # noqa: BLE001 - any failure here falls back to synthetic data, and says why
            if args.data == "sample":
                raise
            reason = f"the sample could not be packed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
    # synthetic: uniform random ids in N equal domains
    n = max(4 * need_blocks, 64 * N_SYNTHETIC_DOMAINS)  # 4x: the online run draws from a larger pool
    rng = np.random.default_rng(args.seed)
    ids = rng.integers(0, args.vocab, size=(n, args.block_size), dtype=np.int64)
    names = [f"synthetic{d}" for d in range(N_SYNTHETIC_DOMAINS)]
    blocks = datasets.Dataset.from_dict({
        "block_id": np.arange(n, dtype=np.int64),
        "domain_id": (np.arange(n) % N_SYNTHETIC_DOMAINS).astype(np.int64),
        "input_ids": list(ids),
    })
    identity = {"name": "synthetic", "kind": "synthetic", "vocab_size": args.vocab,
                "vocab_sha256": f"synthetic-uniform-{args.vocab}"}
    note = (f"synthetic token ids (uniform in [0, {args.vocab}), {N_SYNTHETIC_DOMAINS} equal domains): {n:,} blocks x "
            f"{args.block_size} tokens" + (f"; {reason}" if reason else ""))
    return blocks, names, identity, note


def subset(blocks, pick):
    """Rows ``pick`` of ``blocks``, block_id renumbered 0..N-1 (curricula's tables index blocks densely)."""
    import numpy as np

    return (blocks.select([int(i) for i in pick]).flatten_indices().remove_columns(["block_id"])
            .add_column("block_id", np.arange(len(pick), dtype=np.int64)))


# ---- main ---------------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    started = datetime.datetime.now().astimezone()

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

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("error: --device cuda but torch.cuda.is_available() is False", file=sys.stderr)
        return 2
    if cuda:
        device_name = torch.cuda.get_device_name(0)
        props = torch.cuda.get_device_properties(0)
        device_desc = (f"{device_name} ({props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs, "
                       f"CUDA {torch.version.cuda}, capability {props.major}.{props.minor})")
    else:
        device_name = f"CPU: {_cpu_name()}"
        device_desc = f"{device_name}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    bf16 = cuda
    precision = "bf16 autocast (fp32 master weights)" if bf16 else "fp32"
    compile_on = {"on": True, "off": False, "auto": cuda or args.dry_run}[args.compile]
    compile_backend = args.compile_backend or ("eager" if args.dry_run else "inductor")
    if not cuda and not args.dry_run:
        print("note: no CUDA device; timing on CPU (use --dry-run for the quick check)")

    tmp_ctx = tempfile.TemporaryDirectory(prefix="bench-gpu-")
    tmp = Path(tmp_ctx.name)
    tokens_per_step = args.batch * args.block_size
    steps_per_run = args.warmup + args.steps

    # ---- the plan and the expected time ----------------------------------------------------------------------
    n_params_est = 12 * args.n_layer * args.n_embd ** 2 + (args.vocab + args.block_size) * args.n_embd
    if args.expect_step_s is not None:
        step_s = args.expect_step_s
    elif cuda:  # 0.15 s at 124 M x 8192 tokens (the estimate), scaled by 6 * N * tokens
        step_s = max(0.15 * (n_params_est * tokens_per_step) / (124.4e6 * 8192), 0.005)
    else:
        step_s = 0.02 if args.dry_run else 2.0
    compile_s = args.expect_compile_s if args.expect_compile_s is not None else (
        60.0 if compile_backend == "inductor" else 10.0)
    per_run_s = 3.0 if cuda else 1.0  # model init, Trainer set-up, teardown
    setup_s = 30.0 if cuda else 12.0
    n_eager = len(args.kinds) * args.repeats
    n_compiled = len(COMPILE_KINDS) * args.compile_repeats if compile_on else 0
    expected = (setup_s + n_eager * (steps_per_run * step_s + per_run_s)
                + n_compiled * (compile_s + steps_per_run * step_s + per_run_s))
    print(f"bench_gpu {started:%Y-%m-%d %H:%M %Z}{' (dry run)' if args.dry_run else ''}: {device_desc}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, datasets {datasets.__version__}, "
          f"python {platform.python_version()}; "
          + " ".join(f"{k}={os.environ.get(k, 'unset')}" for k in MALLOC_ENV))
    print(f"plan: {n_eager} eager runs ({', '.join(args.kinds)} x {args.repeats} repeats, interleaved) of "
          f"{args.warmup} warm-up + {args.steps} timed steps"
          + (f", then {n_compiled} compiled runs ({', '.join(COMPILE_KINDS)} x {args.compile_repeats}, "
             f"torch_compile_backend={compile_backend})" if compile_on else ", no compile pass")
          + f"; expected total {expected:.0f} s (assuming {1e3 * step_s:.0f} ms/step, {compile_s:.0f} s per "
          f"compilation, {setup_s:.0f} s set-up); budget {args.budget:.0f} s", flush=True)

    # ---- data -------------------------------------------------------------------------------------------------
    need = args.batch * steps_per_run  # every run trains each block at most once
    blocks, domain_names, tok_identity, data_note = build_data(args, tmp, need)
    online_n = min(4 * need, len(blocks))  # the online run's blocks, scored by the reference: up to 4x what it trains
    print(f"data: {data_note}", flush=True)
    vanilla_ds = blocks.select_columns(["input_ids"])

    def stack_collator(features):
        ids = torch.as_tensor(np.stack([np.asarray(f["input_ids"]) for f in features]), dtype=torch.long)
        return {"input_ids": ids, "labels": ids.clone()}

    lfr_ds, lfr_steps, lfr_epochs = None, 0, 0
    if "lfr" in args.kinds:
        from curricula.methods import DataInfo, RunInfo
        from curricula.methods import load_recipe

        config = load_recipe("lfr")
        dom = np.asarray(blocks.with_format("numpy")["domain_id"])
        rng = np.random.default_rng(args.seed)
        perm = rng.permutation(len(blocks))
        n = args.batch
        while True:
            pick = np.sort(perm[:n])
            state = config.build(DataInfo(dom[pick], domain_names), RunInfo(args.batch, None, args.seed))
            n_boundaries = len(state.epochs) - 1
            if state.total_steps >= steps_per_run + n_boundaries or n >= len(blocks):
                break
            n += args.batch
        lfr_steps, lfr_epochs = state.total_steps, len(state.epochs)
        lfr_ds = subset(blocks, pick)
        print(f"lfr: {len(lfr_ds):,} blocks, plan of {lfr_epochs} epochs, {lfr_steps} steps", flush=True)

    cfg = GPT2Config(n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head, n_positions=args.block_size,
                     vocab_size=args.vocab, attn_implementation=args.attn)

    def make_model(seed=args.seed):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(cfg)
        model.loss_type = "ForCausalLM"  # GPT-2 leaves it unset: Trainer would count B*T loss tokens, not B*(T-1)
        return model

    online_ds, cache = None, None
    if "online" in args.kinds:
        import functools

        import hf_trainer_ext.reference as reference_module
        from hf_trainer_ext.reference import score_reference

        # no progress bar in the output (TQDM_DISABLE is read when tqdm is imported, which may be before this script)
        reference_module.tqdm = functools.partial(_quiet_tqdm, reference_module.tqdm)
        pick = np.sort(np.random.default_rng(args.seed).permutation(len(blocks))[:online_n])
        online_ds = subset(blocks, pick)
        reference = make_model(args.seed + 1).to(args.device)
        t = time.perf_counter()
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else torch.autocast("cpu", enabled=False))
        with autocast:
            cache = score_reference(reference, online_ds, tmp / "reference", batch_size=16 if cuda else 32,
                                    tokenizer_identity=tok_identity).parent
        if cuda:
            torch.cuda.synchronize()
        print(f"reference: a second GPT-2 (seed {args.seed + 1}) scored {len(online_ds):,} blocks once, "
              f"{time.perf_counter() - t:.1f} s (not timed)", flush=True)
        del reference
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    n_params = sum(p.numel() for p in make_model().parameters())
    print(f"model: GPT-2 {args.n_layer} layers x {args.n_embd} (heads {args.n_head}), vocab {args.vocab}, "
          f"{n_params / 1e6:.1f} M parameters, {precision}, attn_implementation={cfg._attn_implementation}; "
          f"batch {args.batch} x {args.block_size} = {tokens_per_step:,} tokens/step", flush=True)

    # ---- timing -----------------------------------------------------------------------------------------------
    def sync():
        if cuda:
            torch.cuda.synchronize()

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.t_train = None
            self.begin, self.end, self.epoch_first = [], [], set()

        def on_train_begin(self, a, state, control, **kw):
            sync()
            self.t_train = time.perf_counter()

        def on_epoch_begin(self, a, state, control, **kw):
            self.epoch_first.add(len(self.end))  # index of the epoch's first step

        def on_step_begin(self, a, state, control, **kw):
            sync()
            self.begin.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            sync()
            self.end.append(time.perf_counter())

        def intervals(self) -> dict:
            ks = [k for k in range(max(args.warmup, 1), len(self.end)) if k not in self.epoch_first]
            return {"loop": [self.end[k] - self.end[k - 1] for k in ks],
                    "step": [self.end[k] - self.begin[k] for k in ks],
                    "first_step_s": (self.end[0] - self.t_train) if self.end and self.t_train else float("nan")}

    def run(kind: str, rep: int, compiled: bool = False) -> dict:
        common = dict(output_dir=str(tmp / f"{kind}-{rep}{'-compiled' if compiled else ''}"),
                      per_device_train_batch_size=args.batch, learning_rate=args.lr, seed=args.seed,
                      report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=not cuda, bf16=bf16,
                      dataloader_num_workers=0)
        if compiled:
            common.update(torch_compile=True, torch_compile_backend=compile_backend)
        timer = StepTimer()
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        if kind == "vanilla":
            targs = TrainingArguments(max_steps=steps_per_run, logging_steps=10**9, **common)
            trainer = Trainer(model=make_model(), args=targs, train_dataset=vanilla_ds, data_collator=stack_collator,
                              callbacks=[timer])
        elif kind == "plain":
            targs = CurriculumTrainingArguments(max_steps=steps_per_run, logging_steps=args.logging_steps, **common)
            trainer = CurriculumTrainer(make_model(), targs, train_dataset=blocks, domain_names=domain_names,
                                        callbacks=[timer])
            assert trainer.block_logging and trainer.curriculum is None
        elif kind == "online":
            from curricula.methods import DoReMiOnlineConfig

            targs = CurriculumTrainingArguments(max_steps=steps_per_run, logging_steps=args.logging_steps, **common)
            trainer = CurriculumTrainer(make_model(), targs, train_dataset=online_ds, domain_names=domain_names,
                                        curriculum=DoReMiOnlineConfig(), reference_losses=cache,
                                        tokenizer_identity=tok_identity, callbacks=[timer])
        elif kind == "lfr":
            targs = CurriculumTrainingArguments(curriculum="lfr", logging_steps=args.logging_steps, **common)
            trainer = CurriculumTrainer(make_model(), targs, train_dataset=lfr_ds, domain_names=domain_names,
                                        callbacks=[timer])
        else:
            raise ValueError(kind)
        trainer.remove_callback(PrinterCallback)  # disable_tqdm prints every log line; keep the output a table
        boundary = []
        if kind == "lfr":
            inner = trainer.finish_epoch

            def timed_boundary():
                sync()
                t = time.perf_counter()
                inner()
                sync()
                boundary.append(time.perf_counter() - t)

            trainer.finish_epoch = timed_boundary
        t1 = time.perf_counter()
        try:
            out = trainer.train()
            sync()
            t2 = time.perf_counter()
            peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _rss_max_mb()
        finally:
            del trainer
            gc.collect()  # the trainer and its callbacks form cycles: free this run's memory before the next run
            if cuda:
                torch.cuda.empty_cache()
        iv = timer.intervals()
        if len(iv["loop"]) == 0:
            raise RuntimeError(f"{kind}: no timed steps ({len(timer.end)} steps run, warm-up {args.warmup})")
        return {**iv, "loss": out.training_loss, "steps": len(timer.end), "setup_s": t1 - t0, "train_s": t2 - t1,
                "peak_mb": peak, "boundary": boundary}

    def describe(kind, r, label=""):
        extra = (f", {len(r['boundary'])} boundaries {1e3 * sum(r['boundary']):.0f} ms" if r["boundary"] else "")
        return (f"  {label}{kind:8s} loop median {1e3 * statistics.median(r['loop']):8.1f} ms/step, step median "
                f"{1e3 * statistics.median(r['step']):8.1f} ms ({r['steps']} steps, {len(r['loop'])} timed; first "
                f"step {r['first_step_s']:.1f} s; set-up {r['setup_s']:.1f} s, train {r['train_s']:.1f} s; peak "
                f"{r['peak_mb']:,.0f} MB; loss {r['loss']:.5f}{extra})")

    # ---- eager pass: interleaved repeats ------------------------------------------------------------------------
    kinds = list(args.kinds)
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    t_runs = time.perf_counter()
    print(f"\neager pass ({precision}, {cfg._attn_implementation}), set-up done at {_elapsed():.0f} s", flush=True)
    repeats_done, rep_s = 0, 0.0
    for rep in range(args.repeats):
        if rep > 0 and _elapsed() + rep_s > args.budget:
            print(f"  stopping after {rep} of {args.repeats} repeats: another ({rep_s:.0f} s) would end past the "
                  f"{args.budget:.0f} s budget", flush=True)
            break
        order = kinds[rep % len(kinds):] + kinds[: rep % len(kinds)]
        t_rep = time.perf_counter()
        for kind in order:
            r = run(kind, rep)
            results[kind].append(r)
            print(describe(kind, r, f"repeat {rep} "), flush=True)
        repeats_done = rep + 1
        rep_s = max(rep_s, time.perf_counter() - t_rep)
        if rep == 0:
            first_steps = [r["first_step_s"] for k in kinds for r in results[k]]
            projected = (_elapsed() + (args.repeats - 1) * rep_s
                         + n_compiled * (compile_s + rep_s / max(len(kinds), 1)))
            print(f"  after repeat 0 ({rep_s:.0f} s): projected total {projected:.0f} s (expected {expected:.0f} s); "
                  f"first steps {min(first_steps):.1f}-{max(first_steps):.1f} s", flush=True)
    eager_s = time.perf_counter() - t_runs

    def pooled(res, kind, key):
        return [x for r in res[kind] for x in r[key]]

    def summarise(res, base_res, base_kind="vanilla"):
        rows = {}
        base = statistics.median(pooled(base_res, base_kind, "loop"))
        for kind in res:
            loop = statistics.median(pooled(res, kind, "loop"))
            per_rep = [statistics.median(r["loop"]) / statistics.median(b["loop"])
                       for r, b in zip(res[kind], base_res[base_kind])]
            rows[kind] = {"loop_ms": 1e3 * loop, "step_ms": 1e3 * statistics.median(pooled(res, kind, "step")),
                          "tokens_per_s": tokens_per_step / loop, "ratio": loop / base,
                          "ratio_min": min(per_rep), "ratio_max": max(per_rep),
                          "peak_mb": max(r["peak_mb"] for r in res[kind]),
                          "timed": len(pooled(res, kind, "loop")),
                          "loss": statistics.median(r["loss"] for r in res[kind]),
                          "first_step_s": max(r["first_step_s"] for r in res[kind])}
        return rows

    mem_label = "peak GPU memory (max_memory_allocated)" if cuda else "process max RSS so far"

    def table(rows, title_kind=lambda k: k, base_note="vanilla"):
        lines = [f"| run | ms/step (median loop) | ms/step (median step) | tokens/s | vs {base_note} | overhead "
                 f"| ratio range over repeats | {'peak memory' if cuda else 'max RSS'} | timed steps | loss |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for kind, s in rows.items():
            lines.append(f"| {title_kind(kind)} | {s['loop_ms']:.1f} | {s['step_ms']:.1f} | "
                         f"{_fmt_int(s['tokens_per_s'])} | {s['ratio']:.3f}x | {100 * (s['ratio'] - 1):+.1f} % | "
                         f"{s['ratio_min']:.3f}-{s['ratio_max']:.3f} | {s['peak_mb'] / 1024:.2f} GiB | {s['timed']} | "
                         f"{s['loss']:.4f} |")
        return "\n".join(lines)

    eager_rows = summarise(results, results)
    header = (f"**{started:%Y-%m-%d}, {device_name}** (torch {torch.__version__}, transformers "
              f"{transformers.__version__}{', CUDA ' + torch.version.cuda if cuda else ''}): GPT-2 "
              f"{n_params / 1e6:.0f} M ({args.n_layer} layers x {args.n_embd}, {args.n_head} heads), {precision}, "
              f"attn_implementation={cfg._attn_implementation}, batch {args.batch} x {args.block_size} = "
              f"{tokens_per_step:,} tokens/step, {args.warmup} warm-up + {args.steps} timed steps x {repeats_done} "
              f"interleaved repeats; data: {data_note.split(':')[0]}"
              + (" (dry run: not a measurement)" if args.dry_run else ""))
    print(f"\neager pass done in {eager_s:.0f} s; pooled over repeats, overhead vs vanilla in the same process; "
          f"memory: {mem_label}\n")
    print(header + "\n")
    print(table(eager_rows), flush=True)
    if "plain" in results:
        dl = max(abs(a["loss"] - b["loss"]) for a, b in zip(results["plain"], results["vanilla"]))
        print(f"\nvanilla vs plain mean training loss: max |diff| {dl:.2e} (same blocks, same order, same init"
              f"{'; bf16 and nondeterministic kernels on GPU' if cuda else ''})")
    if "lfr" in results:
        bs = [b for r in results["lfr"] for b in r["boundary"]]
        if bs:
            print(f"lfr phase boundaries: {len(bs)} over {repeats_done} runs, median {1e3 * statistics.median(bs):.1f}"
                  f" ms, max {1e3 * max(bs):.1f} ms (not in the per-step numbers)")
    sys.stdout.flush()

    # ---- compile pass ------------------------------------------------------------------------------------------
    compiled: dict[str, list[dict]] = {k: [] for k in COMPILE_KINDS}
    compile_notes: list[str] = []
    compile_rows = None
    if compile_on:
        print(f"\ncompile pass (torch_compile=True, backend {compile_backend}) at {_elapsed():.0f} s", flush=True)
        import torch._dynamo

        def on_alarm(signum, frame):
            raise BudgetExceeded()

        old = signal.signal(signal.SIGALRM, on_alarm)
        try:
            for rep in range(args.compile_repeats):
                for kind in COMPILE_KINDS:
                    remaining = args.budget - _elapsed()
                    need_s = compile_s + steps_per_run * step_s + per_run_s
                    if remaining < need_s:
                        compile_notes.append(f"{kind} (repeat {rep}): skipped, {remaining:.0f} s left of the "
                                             f"{args.budget:.0f} s budget, about {need_s:.0f} s needed")
                        print("  " + compile_notes[-1], flush=True)
                        continue
                    signal.alarm(max(1, int(remaining)))
                    try:
                        r = run(kind, rep, compiled=True)
                    except BudgetExceeded:
                        compile_notes.append(f"{kind} (repeat {rep}): stopped at the {args.budget:.0f} s budget")
                        print("  " + compile_notes[-1], flush=True)
                        break
                    except Exception as exc:  # noqa: BLE001 - report the failure, keep the eager results
                        msg = str(exc).strip().splitlines()
                        compile_notes.append(f"{kind} (repeat {rep}): failed, {type(exc).__name__}: "
                                             f"{(msg[0] if msg else '')[:300]}")
                        print("  " + compile_notes[-1], flush=True)
                        traceback.print_exc(limit=-4, file=sys.stdout)
                        break
                    finally:
                        signal.alarm(0)
                        torch._dynamo.reset()
                    compiled[kind].append(r)
                    print(describe(kind, r, f"compiled {rep} "), flush=True)
                else:
                    continue
                break
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        done = {k: v for k, v in compiled.items() if v}
        if "vanilla" in done:
            compile_rows = summarise(done, compiled)
            print(f"\ntorch.compile ({compile_backend}): ratios vs compiled vanilla; eager vanilla "
                  f"{eager_rows['vanilla']['loop_ms']:.1f} ms/step for comparison; 'first step' includes compilation\n")
            print(table(compile_rows, lambda k: f"{k} + compile", "vanilla + compile"))
            for kind, s in compile_rows.items():
                e = eager_rows.get(kind)
                if e:
                    print(f"  {kind}: compiled / eager {s['loop_ms'] / e['loop_ms']:.3f}x, first step (compile) "
                          f"{s['first_step_s']:.1f} s")
        elif not compile_notes:
            compile_notes.append("no compiled run")
    else:
        compile_notes.append("off" if args.compile == "off" else "skipped (no CUDA device)")
    if compile_notes:
        print("torch.compile: " + "; ".join(compile_notes))

    total = _elapsed()
    print(f"\ntotal {total:.0f} s (expected {expected:.0f} s; eager pass {eager_s:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"date": started.isoformat(timespec="seconds"), "device": device_desc,
                   "torch": torch.__version__, "transformers": transformers.__version__, "dry_run": args.dry_run,
                   "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                   "n_params": n_params, "precision": precision, "attn_implementation": cfg._attn_implementation,
                   "tokens_per_step": tokens_per_step, "repeats_done": repeats_done, "data": data_note,
                   "eager": eager_rows, "compiled": compile_rows, "compile_notes": compile_notes,
                   "expected_s": expected, "total_s": total, "runs": results,
                   "compiled_runs": {k: v for k, v in compiled.items() if v}}
        args.json.write_text(json.dumps(payload, indent=1, default=float) + "\n")
        print(f"numbers: {args.json}")
    tmp_ctx.cleanup()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
