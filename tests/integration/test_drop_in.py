"""Drop-in: the user's own run_clm-style script (examples/run_clm.py) switches to the curriculum trainer with one
changed line, and gets LFR with per-domain perplexity named by domain with three more; bad inputs name the fix."""

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest

from curricula.errors import CurriculaError
from hf_trainer_ext import CurriculumDataError, CurriculumTrainer
from test_pack import synthetic_docs
from test_trainer import blocks, targs, tiny_gpt2

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "run_clm.py"
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


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from curricula.data.tokenizers import train_bpe

    root = tmp_path_factory.mktemp("clm")
    docs = synthetic_docs(n_per_domain=40, domains=("code", "legal", "prose"), seed=0)
    with open(root / "docs.jsonl", "w") as fh:
        for d in docs:
            fh.write(json.dumps({"text": d["text"], "domain": d["domain"]}) + "\n")
    train_bpe([d["text"] for d in docs], root / "bpe", vocab_size=300)
    return root


def run(script_text: str, root: Path, out: Path, *extra) -> list[dict]:
    script = out.parent / f"{out.name}.py"
    script.write_text(script_text)
    cmd = [sys.executable, str(script), "--train_file", str(root / "docs.jsonl"), "--tokenizer_name", str(root / "bpe"),
           "--output_dir", str(out), "--per_device_train_batch_size", "8", "--report_to", "none", "--use_cpu", "true",
           "--save_strategy", "no", "--logging_steps", "2", "--eval_strategy", "epoch", *extra]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads((out / "log_history.json").read_text())


def test_run_clm_switches_in_one_line_and_gets_per_domain_lfr_in_three_more(corpus, tmp_path):
    base = EXAMPLE.read_text()
    switched = apply(base, SWITCH)
    lfr = apply(switched, PER_DOMAIN)
    assert changed(base, switched) <= 3 and changed(switched, lfr) <= 5
    plain_log = run(base, corpus, tmp_path / "plain", "--max_steps", "3")
    switched_log = run(switched, corpus, tmp_path / "switched", "--max_steps", "3")
    losses = lambda log: [h["loss"] for h in log if "loss" in h]  # noqa: E731
    assert len(losses(plain_log)) == len(losses(switched_log)) > 0  # trains like the script did
    lfr_log = run(lfr, corpus, tmp_path / "lfr", "--curriculum", "lfr")
    keys = {k for h in lfr_log for k in h}
    for domain in ("code", "legal", "prose"):  # named by domain: no domain_names= anywhere
        assert f"train_ppl/{domain}" in keys and f"eval_ppl/{domain}" in keys
    assert any(k.startswith("curriculum/kept_share/") for k in keys)
    run_record = json.loads((tmp_path / "lfr" / "run.json").read_text())
    assert run_record["method"] == "lfr" and run_record["domain_names"] == ["code", "legal", "prose"]
    assert len(list((tmp_path / "lfr" / "curriculum").glob("epoch-*.parquet"))) == 5  # the lfr plan's 5 epochs


# ---- the user's collator, the user's data -------------------------------------------------------------------------


def test_any_collator_works_with_block_columns(tmp_path):
    from transformers import DataCollatorForLanguageModeling, GPT2TokenizerFast, default_data_collator

    from curricula.data.tokenizers import gpt2_files

    for collator in (default_data_collator, DataCollatorForLanguageModeling(_tokenizer(tmp_path, gpt2_files,
                                                                                       GPT2TokenizerFast), mlm=False)):
        tr = CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / type(collator).__name__, curriculum="lfr"),
                               train_dataset=blocks(), data_collator=collator)
        tr.train()
        assert tr.curriculum.epoch == 4 and len(list((tmp_path / type(collator).__name__ / "curriculum")
                                                    .glob("epoch-*.parquet"))) == 5


def _tokenizer(tmp_path, gpt2_files, cls):
    import shutil

    folder = tmp_path / "gpt2tok"
    folder.mkdir(exist_ok=True)
    vb, ej = gpt2_files()
    shutil.copy(ej, folder / "vocab.json")
    shutil.copy(vb, folder / "merges.txt")
    tok = cls.from_pretrained(str(folder))
    tok.pad_token = tok.eos_token
    return tok


def test_a_collator_that_cannot_take_block_rows_is_refused_with_the_fix(tmp_path):
    def broken(rows):
        raise KeyError("attention_mask")

    with pytest.raises(CurriculumDataError, match=r"the data collator broken fails on a block .*drop data_collator="):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, curriculum="lfr"), train_dataset=blocks(),
                          data_collator=broken)


def test_text_domain_ids_and_variable_length_rows_and_streams_are_refused_with_the_fix(tmp_path):
    ds = blocks()
    text = ds.cast_column("domain_id", datasets.Value("string"))
    with pytest.raises(CurriculumDataError, match=r"domain_id holds text .*class_encode_column\('domain_id'\)"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, curriculum="lfr"), train_dataset=text)
    ragged = datasets.Dataset.from_dict({"block_id": np.arange(3), "domain_id": [0, 0, 1],
                                         "input_ids": [[1, 2, 3], [4, 5], [6]]})
    with pytest.raises(CurriculumDataError, match=r"rows have different lengths \(1 to 3 tokens\).*pack_dataset"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, curriculum="lfr"), train_dataset=ragged)
    stream = ds.to_iterable_dataset()
    with pytest.raises(CurriculumDataError, match=r"got a streaming IterableDataset .*curricula pack"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, curriculum="lfr"), train_dataset=stream)


def test_packing_option_packs_a_text_dataset_in_the_trainer(corpus, tmp_path):
    from transformers import AutoTokenizer

    raw = datasets.load_dataset("json", data_files=str(corpus / "docs.jsonl"), split="train")
    tokenizer = AutoTokenizer.from_pretrained(str(corpus / "bpe"))
    args = targs(tmp_path, curriculum="lfr", packing=True, packing_block_size=64, domain_column="domain")
    tr = CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=raw, processing_class=tokenizer)
    assert tr.domain_names == ["code", "legal", "prose"]
    from curricula.data.pack import pack_dataset

    expected = pack_dataset(raw, tokenizer=str(corpus / "bpe"), block_size=64, domain_column="domain")
    assert len(tr.train_dataset) == len(expected)
    with pytest.raises(CurriculaError, match="packing needs a tokenizer"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "b", curriculum="lfr", packing=True,
                                                        packing_block_size=64), train_dataset=raw)
