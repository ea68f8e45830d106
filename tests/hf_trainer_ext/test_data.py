"""Training rows from packed blocks (``hf_trainer_ext/data.py``): datasets without block ids, shuffled or streamed,
with text domain ids or ragged rows are refused with the fix; any collator works with the block columns, one that
cannot take them is named; ``packing=True`` packs a text dataset in the trainer."""

import datasets
import numpy as np
import pytest

from curricula.errors import CurriculaError
from hf_trainer_ext import CurriculumDataError, CurriculumTrainer


def test_dataset_without_block_id_is_refused(tmp_path, blocks, targs, tiny_gpt2):
    ds = blocks().remove_columns(["block_id"])
    with pytest.raises(CurriculumDataError, match=r"no \['block_id'\] column.*curricula pack"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, curriculum="lfr"), train_dataset=ds)


def test_shuffled_blocks_are_refused(tmp_path, blocks, targs, tiny_gpt2):
    ds = blocks().shuffle(seed=1).flatten_indices()
    with pytest.raises(CurriculumDataError, match="dense 0..95 in row order"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, curriculum="lfr"), train_dataset=ds)


def test_weights_need_domain_ids(tmp_path, blocks, targs, tiny_gpt2):
    with pytest.raises(CurriculumDataError, match="method 'mixture' needs training data with block_id and domain_id"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, max_steps=2, domain_weights="uniform"),
                          train_dataset=blocks().remove_columns(["domain_id"]))


# ---- the user's collator, the user's data -------------------------------------------------------------------------


def test_any_collator_works_with_block_columns(tmp_path, blocks, targs, tiny_gpt2):
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


def test_a_collator_that_cannot_take_block_rows_is_refused_with_the_fix(tmp_path, blocks, targs, tiny_gpt2):
    def broken(rows):
        raise KeyError("attention_mask")

    with pytest.raises(CurriculumDataError, match=r"the data collator broken fails on a block .*drop data_collator="):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, curriculum="lfr"), train_dataset=blocks(),
                          data_collator=broken)


def test_text_domain_ids_and_variable_length_rows_and_streams_are_refused_with_the_fix(tmp_path, blocks, targs,
                                                                                       tiny_gpt2):
    ds = blocks()
    text = ds.cast_column("domain_id", datasets.Value("string"))
    with pytest.raises(CurriculumDataError, match=r"domain_id holds text .*class_encode_column\('domain_id'\)"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, curriculum="lfr"), train_dataset=text)
    ragged = datasets.Dataset.from_dict({"block_id": np.arange(3), "domain_id": [0, 0, 1],
                                         "input_ids": [[1, 2, 3], [4, 5], [6]]})
    with pytest.raises(CurriculumDataError, match=r"rows have different lengths \(1 to 3 tokens\).*pack_dataset"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, curriculum="lfr"), train_dataset=ragged)
    stream = ds.cast_column("domain_id", datasets.ClassLabel(names=["a", "b", "c"])).to_iterable_dataset()
    # a stream has no block ids: a method that ranks blocks (LFR) is refused by name, with the fix
    with pytest.raises(CurriculaError, match=r"method 'lfr' needs every block's loss, which a streamed corpus does "
                                             r"not have.*pack it first"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path, curriculum="lfr"), train_dataset=stream)


def test_packing_option_packs_a_text_dataset_in_the_trainer(clm_corpus, tmp_path, targs, tiny_gpt2):
    from transformers import AutoTokenizer

    raw = datasets.load_dataset("json", data_files=str(clm_corpus / "docs.jsonl"), split="train")
    tokenizer = AutoTokenizer.from_pretrained(str(clm_corpus / "bpe"))
    args = targs(tmp_path, curriculum="lfr", packing=True, packing_block_size=64, domain_column="domain")
    tr = CurriculumTrainer(model=tiny_gpt2(), args=args, train_dataset=raw, processing_class=tokenizer)
    assert tr.domain_names == ["code", "legal", "prose"]
    from curricula.data.pack import pack_dataset

    expected = pack_dataset(raw, tokenizer=str(clm_corpus / "bpe"), block_size=64, domain_column="domain")
    assert len(tr.train_dataset) == len(expected)
    with pytest.raises(CurriculaError, match="packing needs a tokenizer"):
        CurriculumTrainer(model=tiny_gpt2(), args=targs(tmp_path / "b", curriculum="lfr", packing=True,
                                                        packing_block_size=64), train_dataset=raw)


def test_packing_keeps_the_rows_block_size_and_says_what_it_did(tmp_path, targs, caplog):
    """Token rows already cut to a block size (run_clm's group_texts) keep it: 64-token rows are not re-packed into
    the model's 128-token context, and the log says what was done and why."""
    from transformers import GPT2Config, GPT2LMHeadModel

    rng = np.random.default_rng(0)
    rows = datasets.Dataset.from_dict({"input_ids": rng.integers(0, 128, (60, 64)).tolist(),
                                       "domain": np.repeat(["code", "legal", "prose"], 20).tolist()})
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=128, n_positions=128))
    args = targs(tmp_path, curriculum="lfr", packing=True, domain_column="domain")
    with caplog.at_level("WARNING", logger="hf_trainer_ext.data"):
        tr = CurriculumTrainer(model=model, args=args, train_dataset=rows)
    assert tr.domain_names == ["code", "legal", "prose"]
    assert "packing: 60 token rows into 60 domain-pure blocks of 64 tokens (the rows' own length)" in caplog.text
