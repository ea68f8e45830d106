"""Packing invariants (``curricula/data/pack.py``): every token once and in order, no block across domains, dense
stable ids, byte-identical rebuilds; bad sizes and tokenizers; capped domains."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from curricula.data.corpus import load_corpus, write_corpus
from curricula.data.pack import PackConfig, PackError, load_blocks, pack_corpus, read_meta
from curricula.data.tokenizers import TokenizerError, load_tokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, synthetic_docs):
    out = tmp_path_factory.mktemp("corpus")
    write_corpus(synthetic_docs(), out, val_fraction=0.1)
    return out


@pytest.fixture(scope="module")
def packed(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed")
    pack_corpus(corpus, out, PackConfig(block_size=64, num_proc=1, blocks_per_batch=100))
    return out


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_split_is_by_document_deterministic_and_order_free(tmp_path, corpus, synthetic_docs):
    data = load_corpus(corpus)
    train, val = set(data["train"]["doc_id"]), set(data["validation"]["doc_id"])
    assert not train & val
    assert len(train | val) == 180
    for d in ("code", "legal", "prose"):
        assert sum(x.startswith(d) for x in val) == 6  # 10% of 60 per domain
    docs = synthetic_docs()
    write_corpus(docs, tmp_path / "again", val_fraction=0.1)
    assert tree_hashes(tmp_path / "again") == tree_hashes(corpus)
    # the split depends only on doc ids: reversed input gives the same membership (documents keep input order)
    write_corpus(list(reversed(docs)), tmp_path / "reversed", val_fraction=0.1)
    rev = load_corpus(tmp_path / "reversed")
    assert set(rev["validation"]["doc_id"]) == val and set(rev["train"]["doc_id"]) == train


def test_every_token_once_in_order_and_tail_reported(corpus, packed):
    tok = load_tokenizer("gpt2")
    meta = read_meta(packed)
    data = load_corpus(corpus)
    for split in ("train", "validation"):
        blocks = load_blocks(packed, split)
        ids = np.asarray(blocks["input_ids"])
        dom = np.asarray(blocks["domain_id"])
        for name, info in meta["splits"][split]["domains"].items():
            docs = data[split].filter(lambda r: r["domain"] == name)
            stream = []
            for t in tok.encode_batch(docs["text"]):
                stream += t + [tok.eos_id]
            mine = ids[dom == info["domain_id"]].reshape(-1)
            assert len(mine) == info["blocks"] * 64
            assert mine.tolist() == stream[: len(mine)]  # every token, in order, once
            assert len(stream) - len(mine) == info["dropped_tail_tokens"] < 64
            assert info["tokens"] == len(stream)
        total_tail = sum(v["dropped_tail_tokens"] for v in meta["splits"][split]["domains"].values())
        assert meta["splits"][split]["dropped_tail_tokens"] == total_tail


def test_blocks_never_span_domains_and_ids_are_dense(packed):
    meta = read_meta(packed)
    blocks = load_blocks(packed, "train")
    bid = np.asarray(blocks["block_id"])
    assert bid.tolist() == list(range(len(blocks)))
    dom = np.asarray(blocks["domain_id"])
    assert np.all(np.diff(dom) >= 0)  # domains are contiguous id ranges
    for name, info in meta["splits"]["train"]["domains"].items():
        rng = np.flatnonzero(dom == info["domain_id"])
        assert rng[0] == info["block_id_start"] and len(rng) == info["blocks"]
    for row in blocks.select(range(0, len(blocks), 7)):
        names = {d.split("/")[0] for d in row["doc_ids"]}
        assert names == {meta["domain_names"][row["domain_id"]]}


def test_doc_ids_and_offsets_locate_each_block(corpus, packed):
    tok = load_tokenizer("gpt2")
    data = load_corpus(corpus)["train"]
    text_of = dict(zip(data["doc_id"], data["text"]))
    blocks = load_blocks(packed, "train")
    for row in blocks.select(range(0, len(blocks), 11)):
        stream = []
        for d in row["doc_ids"]:
            stream += tok.encode_batch([text_of[d]])[0] + [tok.eos_id]
        start = row["doc_offset"]
        assert stream[start : start + 64] == row["input_ids"]


def test_byte_identical_rebuild_and_num_proc_independent(corpus, packed, tmp_path):
    pack_corpus(corpus, tmp_path / "again", PackConfig(block_size=64, num_proc=1, blocks_per_batch=100))
    assert tree_hashes(tmp_path / "again") == tree_hashes(packed)
    two_procs = PackConfig(block_size=64, num_proc=2, blocks_per_batch=100, min_blocks_per_proc=10)
    pack_corpus(corpus, tmp_path / "two", two_procs)
    assert tree_hashes(tmp_path / "two") == tree_hashes(packed)
    pack_corpus(corpus, tmp_path / "threads", PackConfig(block_size=64, num_threads=2))
    assert tree_hashes(tmp_path / "threads") == tree_hashes(packed)


def test_repack_skips_when_unchanged(corpus, packed):
    before = tree_hashes(packed)
    mtime = (packed / "train" / "data-00000-of-00001.arrow").stat().st_mtime_ns
    pack_corpus(corpus, packed, PackConfig(block_size=64))
    assert (packed / "train" / "data-00000-of-00001.arrow").stat().st_mtime_ns == mtime
    assert tree_hashes(packed) == before


def test_meta_records_tokenizer_identity_and_counts(packed):
    meta = read_meta(packed)
    assert meta["tokenizer"]["name"] == "gpt2"
    assert meta["tokenizer"]["vocab_sha256"] == load_tokenizer("gpt2").identity.vocab_sha256
    assert meta["block_size"] == 64
    assert meta["domain_names"] == ["code", "legal", "prose"]
    tr = meta["splits"]["train"]
    assert tr["blocks"] == sum(v["blocks"] for v in tr["domains"].values()) == len(load_blocks(packed))


# ------------------------------------------------------------------------------------------------ bad input


def test_block_size_larger_than_every_document_packs_across_documents(tmp_path):
    docs = [{"text": "a short document number %d." % i, "domain": "prose", "source": "s", "doc_id": f"p/{i}"} for i in range(100)]
    write_corpus(docs, tmp_path / "c", val_fraction=0.2)
    meta = pack_corpus(tmp_path / "c", tmp_path / "p", PackConfig(block_size=128))
    info = meta["splits"]["train"]["domains"]["prose"]
    assert info["longest_document_tokens"] < 128 <= info["tokens"]  # documents are concatenated, not dropped
    assert info["blocks"] == info["tokens"] // 128


def test_block_size_larger_than_a_whole_domain(tmp_path, synthetic_docs):
    docs = synthetic_docs(domains=("prose",))
    docs.append({"text": "tiny legal text", "domain": "legal", "source": "s", "doc_id": "legal/0"})
    docs.append({"text": "another tiny legal text", "domain": "legal", "source": "s", "doc_id": "legal/1"})
    write_corpus(docs, tmp_path / "c", val_fraction=0.0)
    with pytest.raises(PackError, match=r"domain 'legal' has \d+ tokens .* fewer than block_size=256.*lower --block-size"):
        pack_corpus(tmp_path / "c", tmp_path / "p", PackConfig(block_size=256), splits=("train",))


@pytest.mark.parametrize("size", [32, 4096])
def test_block_size_out_of_range(size):
    with pytest.raises(PackError, match=r"outside \[64, 2048\]"):
        PackConfig(block_size=size)


def test_unknown_tokenizer_in_pack(corpus, tmp_path):
    with pytest.raises(TokenizerError, match="unknown tokenizer 'gpt5'"):
        pack_corpus(corpus, tmp_path / "p", PackConfig(tokenizer="gpt5", block_size=64))


def test_hf_tokenizer_folder_packs(corpus, tmp_path):
    from curricula.data.tokenizers import train_bpe

    data = load_corpus(corpus)["train"]
    train_bpe(data["text"], tmp_path / "bpe", vocab_size=300)
    meta = pack_corpus(corpus, tmp_path / "p", PackConfig(tokenizer=str(tmp_path / "bpe"), block_size=64))
    assert meta["tokenizer"]["kind"] == "hf" and meta["tokenizer"]["vocab_size"] == 300
    ids = np.asarray(load_blocks(tmp_path / "p")["input_ids"])
    assert ids.max() < 300


def test_cap_first_or_spread_over_the_whole_domain(corpus, packed, tmp_path):
    """``first`` keeps a domain's first N blocks (its first documents, often one source); ``spread`` keeps N blocks
    evenly spaced over the domain: the same token windows as the uncapped packing, at rows floor(i * full / N)."""
    import numpy as np

    full = load_blocks(packed, "train").with_format("numpy")
    meta_full = read_meta(packed)
    n = 10
    out = {}
    for cap in ("first", "spread"):
        out[cap] = tmp_path / cap
        pack_corpus(corpus, out[cap], PackConfig(block_size=64, max_blocks_per_domain=n, cap=cap))
        assert read_meta(out[cap])["cap"] == cap
    for cap, path in out.items():
        blocks = load_blocks(path, "train").with_format("numpy")
        for name, info in read_meta(path)["splits"]["train"]["domains"].items():
            f = meta_full["splits"]["train"]["domains"][name]
            rows = np.arange(n) if cap == "first" else np.floor(np.arange(n) * f["blocks"] / n).astype(int)
            want = full["input_ids"][f["block_id_start"] + rows]
            got = blocks["input_ids"][info["block_id_start"]: info["block_id_start"] + n]
            np.testing.assert_array_equal(got, want)
            if cap == "spread":  # reaches the domain's last tenth, where "first" stays at its start
                assert rows[-1] >= 0.9 * f["blocks"] - 1
    assert load_blocks(out["first"], "train")["input_ids"] != load_blocks(out["spread"], "train")["input_ids"]
    pack_corpus(corpus, out["first"], PackConfig(block_size=64, max_blocks_per_domain=n, cap="spread"))  # not skipped
    assert read_meta(out["first"])["cap"] == "spread"
    with pytest.raises(PackError, match="cap='random'"):
        PackConfig(cap="random")
