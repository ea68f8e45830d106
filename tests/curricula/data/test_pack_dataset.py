"""pack_dataset: a datasets.Dataset packed in memory with the same code and invariants as `curricula pack`."""

import random

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from curricula.data.corpus import load_corpus, write_corpus
from curricula.data.pack import PackConfig, PackError, domain_names_of, load_blocks, pack_corpus, pack_dataset
from curricula.data.tokenizers import load_tokenizer

WORDS = "the of and to in is was that for it with as his on be at by had are but from or this über naïve 東京 🙂".split()


def synthetic_docs(n_per_domain=50, domains=("code", "legal", "prose"), seed=3):
    rng = random.Random(seed)
    docs = []
    for d in domains:
        for i in range(n_per_domain):
            n = rng.choice([3, 10, 40, 150, 500])
            docs.append({"text": " ".join(rng.choice(WORDS) for _ in range(n)), "domain": d, "source": f"s-{d}",
                         "doc_id": f"{d}/{i}"})
    rng.shuffle(docs)
    return docs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    write_corpus(synthetic_docs(), out, val_fraction=0.1)
    return out


@pytest.fixture(scope="module")
def packed(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed")
    pack_corpus(corpus, out, PackConfig(block_size=64))
    return out


def test_blocks_equal_curricula_pack_for_the_same_documents(corpus, packed):
    for split in ("train", "validation"):
        docs = load_corpus(corpus)[split]
        mine = pack_dataset(docs, tokenizer="gpt2", block_size=64, domain_column="domain")
        theirs = load_blocks(packed, split)
        assert len(mine) == len(theirs)
        assert mine["input_ids"] == theirs["input_ids"]  # every block's tokens
        for col in ("block_id", "domain_id", "doc_ids", "doc_offset"):
            assert mine[col] == theirs[col], col
    assert domain_names_of(mine) == ["code", "legal", "prose"]
    assert domain_names_of(theirs) is None  # curricula pack's blocks name domains in meta.json instead


def test_domain_purity_dense_ids_and_classlabel(corpus):
    docs = load_corpus(corpus)["train"]
    out = pack_dataset(docs.shuffle(seed=0), tokenizer="gpt2", block_size=64, domain_column="domain",
                       domain_names=["prose", "code", "legal"])
    assert isinstance(out.features["domain_id"], ClassLabel)
    assert domain_names_of(out) == ["prose", "code", "legal"]  # the order given
    assert out["block_id"] == list(range(len(out)))
    dom = np.asarray(out["domain_id"])
    assert np.all(np.diff(dom) >= 0) and set(dom.tolist()) == {0, 1, 2}
    names = domain_names_of(out)
    for row in out:
        assert {d.split("/")[0] for d in row["doc_ids"]} == {names[row["domain_id"]]}  # no block mixes domains
        assert len(row["input_ids"]) == 64


def test_every_token_once_eos_after_each_document_and_tail_dropped():
    tok = load_tokenizer("gpt2")
    texts = [f"document {i} " + "word " * (i * 7 % 50) for i in range(40)]
    out = pack_dataset(Dataset.from_dict({"text": texts}), tokenizer=tok, block_size=64)
    stream = [t for ids in tok.encode_batch(texts) for t in ids + [tok.eos_id]]
    flat = np.asarray(out["input_ids"]).reshape(-1).tolist()
    assert flat == stream[: len(flat)] and len(stream) - len(flat) < 64
    assert domain_names_of(out) == ["all"]


def test_pretokenized_variable_length_rows():
    tok = load_tokenizer("gpt2")
    texts = [f"row {i} " + "token " * (i % 30) for i in range(60)]
    ids = tok.encode_batch(texts)
    ds = Dataset.from_dict({"input_ids": ids, "kind": ["a" if i % 3 else "b" for i in range(60)]})
    as_is = pack_dataset(ds, block_size=64, domain_column="kind")  # no tokenizer: rows concatenated as they are
    for d, name in enumerate(domain_names_of(as_is)):
        stream = [t for i, x in enumerate(ids) if ds[i]["kind"] == name for t in x]
        got = np.asarray(as_is.filter(lambda r: r["domain_id"] == d)["input_ids"]).reshape(-1).tolist()
        assert got == stream[: len(got)]
    with_eos = pack_dataset(ds, tokenizer="gpt2", block_size=64, domain_column="kind")  # the tokenizer's EOS appended
    from_text = pack_dataset(ds.add_column("text", texts).remove_columns("input_ids"), tokenizer="gpt2",
                             block_size=64, domain_column="kind")
    assert with_eos["input_ids"] == from_text["input_ids"]


def test_integer_and_classlabel_domain_columns():
    texts = ["alpha beta gamma " * 30, "delta epsilon " * 40, "zeta eta theta " * 30, "iota kappa " * 40]
    ints = Dataset.from_dict({"text": texts, "d": [0, 1, 0, 1]})
    a = pack_dataset(ints, tokenizer="gpt2", block_size=64, domain_column="d", domain_names=["x", "y"])
    labelled = ints.cast(Features({"text": Value("string"), "d": ClassLabel(names=["x", "y"])}))
    b = pack_dataset(labelled, tokenizer="gpt2", block_size=64, domain_column="d")
    assert domain_names_of(a) == domain_names_of(b) == ["x", "y"] and a["input_ids"] == b["input_ids"]
    with pytest.raises(PackError, match="holds integer ids but nothing names them: pass domain_names"):
        pack_dataset(ints, tokenizer="gpt2", block_size=64, domain_column="d")


@pytest.mark.parametrize("make, kwargs, message", [
    (lambda: Dataset.from_dict({"text": ["a b c " * 100]}).to_iterable_dataset(), dict(tokenizer="gpt2"),
     r"not a streaming IterableDataset.*`curricula pack`.*pack_dataset"),
    (lambda: Dataset.from_dict({"body": ["a b c " * 100]}), dict(tokenizer="gpt2"),
     r"no 'text' column to tokenize \(columns: \['body'\]\); pass text_column=NAME"),
    (lambda: Dataset.from_dict({"text": ["a b c " * 100]}), dict(),
     r"no 'input_ids' column and no tokenizer was given.*pass tokenizer='gpt2'"),
    (lambda: Dataset.from_dict({"text": ["a b c " * 100]}), dict(tokenizer="gpt2", domain_names=["a", "b"]),
     r"names 2 domains but there is no domain column.*domain_column=NAME"),
    (lambda: Dataset.from_dict({"text": ["a b c " * 100]}), dict(tokenizer="gpt2", domain_column="domain"),
     r"no 'domain' column for domain_column"),
    (lambda: Dataset.from_dict({"text": ["a few words"]}), dict(tokenizer="gpt2"),
     r"has 4 tokens, fewer than one block of block_size=64: the result would be empty"),
    (lambda: Dataset.from_dict({"text": ["a b c " * 100, "x"], "d": ["big", "tiny"]}),
     dict(tokenizer="gpt2", domain_column="d"), r"domain 'tiny' has 2 tokens in the dataset, fewer than block_size=64"),
    (lambda: DatasetDict({"train": Dataset.from_dict({"text": ["a"]})}), dict(tokenizer="gpt2"),
     r"split 'train': the dataset has 2 tokens, fewer than one block"),
    (lambda: Dataset.from_dict({"text": ["a b c " * 100]}), dict(tokenizer=object()), r"tokenizer object lacks"),
])
def test_errors_say_what_is_wrong_and_how_to_fix_it(make, kwargs, message):
    with pytest.raises(PackError, match=message):
        pack_dataset(make(), block_size=64, **kwargs)


def test_former_positional_signature_still_packs_a_split_on_disk(corpus, packed, tmp_path):
    data = load_corpus(corpus)["train"]
    with pytest.warns(DeprecationWarning, match="pack_split"):
        stats = pack_dataset(data, ["code", "legal", "prose"], PackConfig(block_size=64), tmp_path, "train", "fp")
    assert stats["blocks"] == len(load_blocks(packed, "train"))
