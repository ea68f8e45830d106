"""Helpers shared by the tests: tiny data, a tiny model, training arguments, a loss tap, synthetic run folders.

Not a test module (no tests here). Test modules get these through the fixtures of ``tests/conftest.py`` (a fixture
of the same name returns the helper itself, e.g. ``def test_x(blocks, tiny_gpt2): tiny_gpt2(dropout=0.0)``) and never
import this file; the child-process drivers in ``tests/drivers/`` import it directly (``from support import ...``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

# ---- a tiny model on synthetic blocks ----------------------------------------------------------------------------

N, T, V = 96, 32, 128  # blocks, tokens per block, vocabulary: the sizes of ``blocks()`` and ``tiny_gpt2()``
IDENTITY = {"name": "synthetic", "vocab_sha256": "0" * 64}  # the tokenizer identity stamped on synthetic runs


def blocks(n=N, seed=0):
    """``n`` packed blocks of ``T`` tokens in 3 domains (``n // 3`` each): 0 easy, 1 half-predictable, 2 random."""
    import datasets

    rng = np.random.default_rng(seed)
    dom = np.repeat([0, 1, 2], n // 3).astype(np.int32)
    ids = rng.integers(0, V, (n, T)).astype(np.int32)
    ids[dom == 0] %= 8  # an easy domain: focus should drop it first
    ids[dom == 1, 1::2] = ids[dom == 1, 0::2]  # a half-predictable one
    return datasets.Dataset.from_dict({"block_id": np.arange(n), "domain_id": dom, "input_ids": ids})


def tiny_gpt2(dropout=0.1, seed=0):
    """A 2-layer, 32-wide GPT-2 over ``V`` tokens and ``T`` positions, initialised from ``seed``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=V, n_positions=T, bos_token_id=0, eos_token_id=0,
                     resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)
    return GPT2LMHeadModel(cfg)


def targs(out, cls=None, **kw):
    """Training arguments for a tiny CPU run (``cls`` defaults to ``CurriculumTrainingArguments``): batch 8 x 2
    accumulation steps, no saving, no reporting; ``kw`` overrides."""
    if cls is None:
        from hf_trainer_ext import CurriculumTrainingArguments as cls
    base = dict(output_dir=str(out), per_device_train_batch_size=8, gradient_accumulation_steps=2, learning_rate=1e-3,
                report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True, logging_steps=1000, seed=0)
    base.update(kw)
    return cls(**base)


def plan_file(tmp_path, text):
    """``text`` written to ``tmp_path/plan.yaml``; returns the path as a string."""
    p = tmp_path / "plan.yaml"
    p.write_text(text)
    return str(p)


def load_official(name: str):
    """A transcription of official code in ``tests/fixtures/official/NAME.py``, loaded by file path (tests/ is never
    put on sys.path: tests/curricula would shadow the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"official_{name}",
                                                  Path(__file__).resolve().parent / "fixtures" / "official" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stop_at(step: int):
    """A ``TrainerCallback`` that ends training after optimizer step ``step`` (a crash after its checkpoint, when
    the run saves there)."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step:
                control.should_training_stop = True

    return StopAt()


def online_mixer_on_two_processes(out: Path, method: str, *extra) -> list[dict]:
    """``tests/drivers/dist_online_mixer_run.py`` on 2 CPU processes (``extra``: steps and a checkpoint to resume);
    the two ranks' records (or the resumed run's)."""
    import os
    import subprocess
    import sys

    driver = Path(__file__).resolve().parent / "drivers" / "dist_online_mixer_run.py"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(driver),
           str(out), method, *map(str, extra)]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    suffix = "-resumed" if len(extra) > 1 else ""
    return [json.loads((Path(out) / f"{method}-rank{r}{suffix}.json").read_text()) for r in (0, 1)]


class LossTap:
    """Records every micro-batch loss a trainer backpropagates, and the block ids it trained."""

    def __init__(self, trainer):
        self.losses, self.batches = [], []
        step = trainer.training_step
        cl = trainer.compute_loss

        def training_step(model, inputs, num_items_in_batch=None):
            if "block_id" in inputs:
                self.batches.append(inputs["block_id"].tolist())
            loss = step(model, inputs, num_items_in_batch)
            self.losses.append(float(loss))
            return loss

        trainer.training_step = training_step
        trainer.compute_loss = cl


# ---- batches drawn by domain -------------------------------------------------------------------------------------

DOM = np.repeat([0, 1, 2], N // 3)  # the domain of every block of ``blocks()``


def per_step(tap, ga=2):
    """A ``LossTap``'s micro-batches joined into optimizer steps (``ga`` micro-batches each)."""
    return [np.concatenate(tap.batches[i : i + ga]) for i in range(0, len(tap.batches), ga)]


def assert_counts_follow(ids, weights, batch=16):
    """Each domain of ``blocks()`` has floor or ceil of its quota ``batch * weight`` in the global batch ``ids``."""
    counts = np.bincount(DOM[ids], minlength=len(weights))
    assert counts.sum() == batch
    quota = batch * np.asarray(weights)
    assert np.all((counts == np.floor(quota)) | (counts == np.ceil(quota))), (counts, quota)


# ---- LFR runs that checkpoint (crash safety) ---------------------------------------------------------------------

LFR_PLAN = "phases: [{kind: learn, epochs: 1}, {kind: focus, drop_percent: 50, epochs: 2}, {kind: review, epochs: 1}]"


def _stop_at(step):
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == step:
                control.should_training_stop = True

    return StopAt()


def lfr(tmp_path, out, stop_at=None, resume=None, eval_dataset=None, **kw):
    """``LFR_PLAN`` (learn 6 steps, focus 3 + 3, review 6) on ``blocks()`` into ``out``, a checkpoint every 3 steps
    (``save_steps``); stopped after step ``stop_at``, or resumed from ``resume``. Returns (trainer, its LossTap)."""
    from hf_trainer_ext import CurriculumTrainer

    args = targs(out, curriculum=plan_file(tmp_path, LFR_PLAN), save_strategy="steps",
                 save_steps=kw.pop("save_steps", 3), **kw)
    tr = CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=blocks(), eval_dataset=eval_dataset)
    tap = LossTap(tr)
    if stop_at:
        tr.add_callback(_stop_at(stop_at))
    tr.train(resume_from_checkpoint=resume)
    return tr, tap


# ---- the trainer's components on their own ------------------------------------------------------------------------

TWO_EPOCH_PLAN = {"phases": [{"kind": "learn", "epochs": 1}, {"kind": "focus", "drop_percent": 50, "epochs": 1}]}


def tiny_lfr(plan=None, n=32, global_batch=8, seed=0):
    """An LFR curriculum (default: learn 1 epoch, then focus dropping 50 %) over ``n`` blocks in two domains,
    ``easy`` (the first half) and ``hard``; ``global_batch`` blocks per step. Not started (``start_epoch(0)``)."""
    from curricula.methods import DataInfo, LFRConfig, RunInfo

    config = LFRConfig.from_dict(plan or TWO_EPOCH_PLAN)
    return config.build(DataInfo(np.repeat([0, 1], n // 2), ["easy", "hard"]), RunInfo(global_batch, None, seed))


class SingleProcess:
    """A stand-in for ``accelerate.Accelerator`` on one process: the collective calls the trainer's components make
    (``wait_for_everyone`` counted in ``waits``; ``gather`` returns its input)."""

    num_processes = 1
    process_index = 0
    is_main_process = True
    is_local_main_process = True
    device = "cpu"

    def __init__(self):
        self.waits = 0

    def wait_for_everyone(self):
        self.waits += 1

    def gather(self, tensor):
        return tensor


# ---- LFR's index table -------------------------------------------------------------------------------------------


def table_with(losses, domains=None):
    """An ``IndexTable`` whose blocks were all seen once (epoch 0) with these losses (NaN/inf allowed)."""
    from curricula.methods.lfr import IndexTable

    losses = np.asarray(losses, dtype=np.float32)
    t = IndexTable.new(np.zeros(losses.size, np.int32) if domains is None else np.asarray(domains))
    t.update(np.arange(losses.size), losses, epoch=0)
    return t


# ---- DoReMi: a reference and a proxy -----------------------------------------------------------------------------

DOMAIN_NAMES = ["easy", "half", "random"]  # the domains of ``blocks()``


def build_reference(out: Path):
    """A reference model (``tiny_gpt2(dropout=0.0, seed=1)``, 6 steps on uniform weights) and its cached losses
    (``out/cache``, stamped with ``IDENTITY``). Returns (model, cache folder)."""
    from hf_trainer_ext import CurriculumTrainer
    from hf_trainer_ext.reference import score_reference

    model = tiny_gpt2(dropout=0.0, seed=1)
    CurriculumTrainer(model=model, args=targs(out / "run", max_steps=6, domain_weights="uniform"),
                      train_dataset=blocks()).train()
    score_reference(model, blocks(), out / "cache", batch_size=16, tokenizer_identity=IDENTITY)
    return model, out / "cache"


def proxy(tmp_path, **kw):
    """A DoReMi proxy (Group DRO) trainer on ``blocks()``; ``max_steps`` (default 8) and ``args`` go to the
    arguments, every other keyword (the reference) to the trainer."""
    from curricula.methods import GroupDROConfig
    from hf_trainer_ext import CurriculumTrainer

    args = targs(tmp_path, max_steps=kw.pop("max_steps", 8), **kw.pop("args", {}))
    return CurriculumTrainer(model=tiny_gpt2(dropout=0.0, seed=2), args=args, train_dataset=blocks(),
                             curriculum=GroupDROConfig(), domain_names=DOMAIN_NAMES, tokenizer_identity=IDENTITY, **kw)


# ---- documents, corpora and packed data --------------------------------------------------------------------------

WORDS = "the of and to in is was that for it with as his on be at by had are but from or this you über naïve 東京 🙂".split()


def synthetic_docs(n_per_domain=60, domains=("code", "legal", "prose"), seed=0):
    """Random-word documents, shorter and longer than a block, ``n_per_domain`` per domain, in shuffled order."""
    rng = random.Random(seed)
    docs = []
    for d in domains:
        for i in range(n_per_domain):
            n = rng.choice([3, 10, 40, 150, 600])  # shorter and longer than a block
            docs.append({"text": " ".join(rng.choice(WORDS) for _ in range(n)), "domain": d, "source": f"syn-{d}",
                         "doc_id": f"{d}/{i}"})
    rng.shuffle(docs)  # input order must not matter for the split
    return docs


def build_two_stages(root: Path) -> Path:
    """Two packed datasets sharing one 300-token BPE: ``root/packed-en`` (code, prose) and ``root/packed-de`` (one
    upper-cased domain, german); the BPE in ``root/bpe``."""
    from curricula.data.corpus import write_corpus
    from curricula.data.pack import PackConfig, pack_corpus
    from curricula.data.tokenizers import train_bpe

    d0 = synthetic_docs(n_per_domain=40, domains=("code", "prose"), seed=0)
    d1 = [{**d, "domain": "german", "doc_id": "de/" + d["doc_id"], "text": d["text"].upper()}
          for d in synthetic_docs(n_per_domain=60, domains=("x",), seed=1)]
    train_bpe([d["text"] for d in d0 + d1], root / "bpe", vocab_size=300)
    for name, docs in (("en", d0), ("de", d1)):
        write_corpus(docs, root / name, val_fraction=0.1)
        pack_corpus(root / name, root / f"packed-{name}", PackConfig(tokenizer=str(root / "bpe"), block_size=64))
    return root


def build_tiny_packed(root: Path) -> Path:
    """A 3-domain corpus (80 documents each) packed in 64-token blocks with its own 300-token BPE: ``root/packed``."""
    from curricula.data.corpus import write_corpus
    from curricula.data.pack import PackConfig, pack_corpus
    from curricula.data.tokenizers import train_bpe

    docs = synthetic_docs(n_per_domain=80)
    write_corpus(docs, root / "corpus", val_fraction=0.1)
    train_bpe([d["text"] for d in docs], root / "bpe", vocab_size=300)
    pack_corpus(root / "corpus", root / "packed", PackConfig(tokenizer=str(root / "bpe"), block_size=64))
    return root / "packed"


def build_clm_corpus(root: Path) -> Path:
    """What examples/run_clm.py reads: ``root/docs.jsonl`` (text + domain; code, legal, prose) and a 300-token BPE
    trained on it (``root/bpe``)."""
    from curricula.data.tokenizers import train_bpe

    docs = synthetic_docs(n_per_domain=40, domains=("code", "legal", "prose"), seed=0)
    with open(root / "docs.jsonl", "w") as fh:
        for d in docs:
            fh.write(json.dumps({"text": d["text"], "domain": d["domain"]}) + "\n")
    train_bpe([d["text"] for d in docs], root / "bpe", vocab_size=300)
    return root


# ---- run folders as the pipelines write them ---------------------------------------------------------------------


def _cosine(steps: int) -> dict:
    return {"type": "warmup_cosine", "max_lr": 0.002, "total_steps": steps}


def continual_run(root: Path, infinite: bool = False) -> Path:
    """``curricula continual`` output: OUT/continual.json + continual.png, one folder per stage / last-stage variant
    (``<stage>`` and ``<last stage>-replay<percent>``) holding the model and its training_config.json."""
    root.mkdir(parents=True)
    if infinite:
        inner = {"type": "infinite", "max_lr": 0.002, "constant_lr": 0.001, "min_lr": 0.0001, "warmup_steps": 20,
                 "cooldown_steps": 200}
        sched = {"en": {"type": "offset", "schedule": inner, "offset": 0},
                 "de": {"type": "offset", "schedule": inner, "offset": 600}}
    else:
        sched = {"en": _cosine(600), "de": _cosine(400)}
    stages = [{"stage": "en", "replay": 0.0, "steps": 600, "before": {"eval_en_loss": 9.0, "eval_de_loss": 9.0},
               "after": {"eval_en_loss": 5.5, "eval_de_loss": 9.6}, "curve": [], "schedule": sched["en"]}]
    variants = [{"stage": "de", "replay": r, "steps": 400, "before": {}, "curve": [], "schedule": sched["de"],
                 "after": {"eval_en_loss": round(7.0 - 4 * r, 3), "eval_de_loss": 5.0}} for r in (0.0, 0.05, 0.25)]
    recipe = {"stages": [{"name": "en", "packed": "/data/en", "steps": 600, "replay": 0.0, "replay_seen_only": True},
                         {"name": "de", "packed": "/data/de", "steps": 400, "replay": 0.05, "replay_seen_only": False}],
              "optimizer": "keep", "max_lr": 0.002, "infinite": None}
    (root / "continual.json").write_text(json.dumps({"stages": stages, "last_stage_variants": variants,
                                                     "recipe": recipe}))
    (root / "continual.png").write_bytes(b"\x89PNG\r\n\x1a\n not a real plot")
    for name, steps, key in (("en", 600, "en"), ("de-replay0", 400, "de"), ("de-replay5", 400, "de"),
                             ("de-replay25", 400, "de")):
        (root / name).mkdir()
        (root / name / "config.json").write_text("{}")
        (root / name / "model.safetensors").write_bytes(b"x")
        config = {"learning_rate": 0.002, "max_steps": steps, "lr_scheduler_type": "linear",
                  "lr_schedule": sched[key]}
        (root / name / "training_config.json").write_text(json.dumps(config))
    return root
