"""What every experiment shares: the data, the model size, the training arguments, and how a result is written.

Sizes are chosen for a 2-core CPU running two experiments side by side (one thread each, ~0.3-0.4 s per step):
GPT-2 with 2 layers, width 128, 4 heads (1.5 M parameters) over an 8,192-token byte-level BPE, blocks of 128 tokens,
16 blocks (2,048 tokens) per step. Build the data once (about 2 minutes, see ``prepare_data``):

    python scripts/experiments/prepare.py
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "exp"
RUNS = ROOT / "runs" / "experiments"
TOKENIZER = DATA / "bpe8k"
PACKED = {  # name -> (corpus, max blocks per domain, which blocks: curricula pack --cap)
    "en-cap512": ("data/corpus/en", 512, "first"),  # LFR vs random: 3,584 blocks seen ~3 times
    "en-cap2000": ("data/corpus/en", 2000, "first"),  # DoReMi and continual D0: 14,000 blocks
    "de-cap5000": ("data/corpus/de", 5000, "first"),  # continual D1
    "en-cap512-spread": ("data/corpus/en", 512, "spread"),  # the LFR check on blocks from every source
    "en-cap64-spread": ("data/corpus/en", 64, "spread"),  # round 2, LFR where forgetting happens: 448 blocks
    "en-sources-cap500": ("data/corpus-sources", 500, "spread"),  # round 2, DoReMi with the 20 sources as domains
    "many-cap500": ("data/corpus-many/en", 500, "spread"),  # the second corpus, 19 domains (--preset many)
}
MANY_TOKENIZER = DATA / "bpe8k-many"  # an 8,192-token BPE trained on the many-domain corpus' training documents
PACKED_TOKENIZER = {"many-cap500": MANY_TOKENIZER}  # packings not made with TOKENIZER
SMOLLM2 = ROOT / "models" / "smollm2-135m"  # scripts/convert_smollm2.py; round 2's continual run on a pretrained model
SMOLLM2_PACKED = {  # packed with SmolLM2's own tokenizer, blocks spread over every source
    "en-smollm2": ("data/corpus/en", 600),  # the stand-in for its pretraining data: replayed and evaluated
    "de-smollm2": ("data/corpus/de", 4000),  # the new data
}
DOREMI_SWEEP = {  # round 2: DoReMi's settings on the 20 sources, next to eta 1 (tag -> doremi_round2.py flags)
    "eta0.3": ["--eta", "0.3"], "eta3": ["--eta", "3"], "proxy600": ["--proxy-steps", "600"]}
MODEL = {"n_layer": 2, "n_embd": 128, "n_head": 4}
MODELS = {"small": MODEL, "large": {"n_layer": 4, "n_embd": 256, "n_head": 4}}  # 1.5 M / 3.2 M non-embedding
BATCH = 16
BLOCK = 128
TRAINING = {  # TrainingArguments every run shares (the LR schedule: 5 % warmup, cosine)
    "per_device_train_batch_size": BATCH,
    "per_device_eval_batch_size": 64,
    "learning_rate": 2e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "weight_decay": 0.1,
    "logging_steps": 25,
    "save_strategy": "no",
    "report_to": "none",
    "disable_tqdm": True,
}
EVAL_EVERY = 50
EVAL_BLOCKS = 350  # validation blocks, an equal share per domain


def setup(threads: int = 1) -> None:
    """One thread per run (two runs share the machine); glibc keeps the logits buffers instead of unmapping them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    torch.set_num_threads(threads)


def packed(name: str) -> Path:
    path = DATA / name
    if not (path / "meta.json").is_file():
        sys.exit(f"{path} is missing: build the experiment data first with `python scripts/experiments/prepare.py`")
    return path


def eval_history(log_history: list[dict]) -> list[dict]:
    """The evaluation entries of a Trainer's log history (step, eval_loss, eval_ppl/<domain>, ...)."""
    return [h for h in log_history if any(k.startswith("eval_") and (k.endswith("loss") or "ppl" in k) for k in h)]


def merge_evals(entries: list[dict]) -> list[dict]:
    """Trainer logs its eval loss and curricula's per-domain perplexities as separate entries of one step: merge."""
    by_step: dict[int, dict] = {}
    for h in entries:
        by_step.setdefault(int(h["step"]), {"step": int(h["step"])}).update(
            {k: v for k, v in h.items() if k.startswith("eval_")})
    return [by_step[s] for s in sorted(by_step)]


def hardware() -> dict:
    import torch

    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads_per_run": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_result(path: Path, result: dict, started: float) -> None:
    """Atomically (a crash leaves no half result that the runner would take as done)."""
    result = {**result, "command": shlex.join([Path(sys.executable).name, *sys.argv]), "commit": git_commit(),
              "hardware": hardware(), "seconds": round(time.time() - started, 1)}
    from curricula.run_layout import write_json

    write_json(path, result)
    print(f"wrote {path}")
