"""Drop-in: the user's own run_clm-style script (examples/run_clm.py) switches to the curriculum trainer with one
changed line, and gets LFR with per-domain perplexity named by domain with three more. The user's own collators and
data are tested in tests/hf_trainer_ext/test_data.py."""

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "run_clm.py"
SWITCH = [  # (old line, new line): the 3-line budget of the switch
    ("from transformers import Trainer, TrainingArguments",
     "from hf_trainer_ext import CurriculumTrainer as Trainer, CurriculumTrainingArguments as TrainingArguments"),
]
PER_DOMAIN = [  # then LFR with per-domain blocks and names (--curriculum lfr on the command line): 5 lines
    ("from datasets import load_dataset",
     "from datasets import load_dataset\nfrom curricula.data import pack_dataset, per_domain_subset"),
    ("    lm_datasets = tokenized.map(group_texts, batched=True)",
     "    lm_datasets = pack_dataset(raw, tokenizer=data_args.tokenizer_name, block_size=block_size, "
     "domain_column=\"domain\")"),
    ("                      eval_dataset=lm_datasets.select(range(8)), processing_class=tokenizer,",
     "                      eval_dataset=per_domain_subset(lm_datasets, 12), processing_class=tokenizer,"),
]


def apply(text: str, edits) -> str:
    for old, new in edits:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def changed(a: str, b: str) -> int:
    """Lines added or modified going from a to b (a modified line counts once)."""
    ops = difflib.SequenceMatcher(None, a.splitlines(), b.splitlines()).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")


def run(script_text: str, root: Path, out: Path, *extra) -> list[dict]:
    script = out.parent / f"{out.name}.py"
    script.write_text(script_text)
    cmd = [sys.executable, str(script), "--train_file", str(root / "docs.jsonl"), "--tokenizer_name", str(root / "bpe"),
           "--output_dir", str(out), "--per_device_train_batch_size", "8", "--report_to", "none", "--use_cpu", "true",
           "--save_strategy", "no", "--logging_steps", "2", "--eval_strategy", "epoch", *extra]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "log_history.json").read_text())


def test_run_clm_switches_in_one_line_and_gets_per_domain_lfr_in_three_more(clm_corpus, tmp_path):
    base = EXAMPLE.read_text()
    switched = apply(base, SWITCH)
    lfr = apply(switched, PER_DOMAIN)
    assert changed(base, switched) <= 3 and changed(switched, lfr) <= 5
    plain_log = run(base, clm_corpus, tmp_path / "plain", "--max_steps", "3")
    switched_log = run(switched, clm_corpus, tmp_path / "switched", "--max_steps", "3")
    losses = lambda log: [h["loss"] for h in log if "loss" in h]  # noqa: E731
    assert len(losses(plain_log)) == len(losses(switched_log)) > 0  # trains like the script did
    lfr_log = run(lfr, clm_corpus, tmp_path / "lfr", "--curriculum", "lfr")
    keys = {k for h in lfr_log for k in h}
    for domain in ("code", "legal", "prose"):  # named by domain: no domain_names= anywhere
        assert f"train_ppl/{domain}" in keys and f"eval_ppl/{domain}" in keys
    assert any(k.startswith("curriculum/kept_share/") for k in keys)
    run_record = json.loads((tmp_path / "lfr" / "run.json").read_text())
    assert run_record["method"] == "lfr" and run_record["domain_names"] == ["code", "legal", "prose"]
    assert len(list((tmp_path / "lfr" / "curriculum").glob("epoch-*.parquet"))) == 5  # the lfr plan's 5 epochs


def test_analyze_shows_the_block_text_of_a_run_clm_run(clm_corpus, tmp_path):
    """An in-memory (pack_dataset) run has no packed folder: its blocks are recorded in the run folder, so
    `curricula analyze` prints the hardest blocks' text instead of "text unavailable"."""
    lfr = apply(apply(EXAMPLE.read_text(), SWITCH), PER_DOMAIN)
    run(lfr, clm_corpus, tmp_path / "lfr", "--curriculum", "lfr")
    proc = subprocess.run([sys.executable, "-c", "import sys; from curricula.cli import main; sys.exit(main())", "analyze",
                           str(tmp_path / "lfr"), "--top-k", "3"],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "text unavailable" not in proc.stdout
    hardest = proc.stdout.split("Hardest blocks", 1)[1]
    assert any(word in hardest for word in ("the", "of", "and"))  # decoded words of the corpus' blocks


def test_one_run_doremi_from_a_user_script_scores_its_reference_once(clm_corpus, tmp_path, targs):
    """A user's own script: pack_dataset (with the tokenizer object they hold) + a reference model in the
    constructor. The trainer scores the reference into OUTPUT_DIR/reference_losses, keyed by the packed data's
    tokenizer identity, and a rerun reuses it; a reference folder from another tokenizer is refused."""
    from datasets import load_dataset
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from curricula.data import pack_dataset
    from curricula.data.tokenizers import train_bpe
    from hf_trainer_ext import CurriculumTrainer
    from hf_trainer_ext.data import packed_tokenizer
    from hf_trainer_ext.reference import ReferenceMismatchError

    tokenizer = AutoTokenizer.from_pretrained(str(clm_corpus / "bpe"))
    raw = load_dataset("json", data_files=str(clm_corpus / "docs.jsonl"), split="train")
    blocks = pack_dataset(raw, tokenizer=tokenizer, block_size=64, domain_column="domain")

    def model(seed):
        import torch

        torch.manual_seed(seed)
        return GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_layer=1, n_embd=32, n_head=2))

    steps = -(-len(blocks) // 16)  # at least one pass over the blocks: scoring once beats a forward per step
    method = '{"method": "doremi_online"}'  # what --curriculum takes on the command line
    args = lambda out="run": targs(tmp_path / out, max_steps=steps, curriculum=method)  # noqa: E731
    cache = tmp_path / "run" / "reference_losses"
    CurriculumTrainer(model=model(0), args=args(), train_dataset=blocks, reference_model=model(1)).train()
    meta = json.loads((cache / "reference.json").read_text())
    assert meta["tokenizer"]["vocab_sha256"] == packed_tokenizer(blocks)["vocab_sha256"]
    assert meta["key"]["tokenizer"] == packed_tokenizer(blocks)["vocab_sha256"] and meta["n_blocks"] == len(blocks)
    written = (cache / "reference_losses.arrow").stat().st_mtime_ns
    weights = json.loads((tmp_path / "run" / "doremi" / "domain_weights.json").read_text())["weights"]
    assert sorted(weights) == ["code", "legal", "prose"]

    CurriculumTrainer(model=model(0), args=args(), train_dataset=blocks, reference_model=model(1))  # a rerun
    assert (cache / "reference_losses.arrow").stat().st_mtime_ns == written  # reused, not rescored

    other = tmp_path / "other-tokenizer"
    model(1).save_pretrained(other)
    train_bpe(["entirely different words, a different vocabulary"] * 20, other, vocab_size=280)
    with pytest.raises(ReferenceMismatchError, match="token ids would not mean the same thing"):
        CurriculumTrainer(model=model(0), args=args("other"),
                          train_dataset=blocks, reference_model=str(other))
