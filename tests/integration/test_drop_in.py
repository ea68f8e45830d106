"""Drop-in: the user's own run_clm-style script (examples/run_clm.py) switches to the curriculum trainer with one
changed line, and gets LFR with per-domain perplexity named by domain with three more. The user's own collators and
data are tested in tests/hf_trainer_ext/test_data.py."""

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path



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
