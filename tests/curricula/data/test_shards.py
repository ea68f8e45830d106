"""Packing across machines: shards 0..n-1 of a corpus merge into exactly the single pack (every file, meta.json too)."""

import hashlib
import json
import random
from pathlib import Path

import pyarrow as pa
import pytest

from curricula.cli import main
from curricula.data.corpus import write_corpus
from curricula.data.pack import PackConfig, PackError, load_blocks, pack_corpus
from curricula.data.shards import merge_shards, pack_shard, parse_shard, read_document_range, shard_range

WORDS = "the of and to in is was that for it with as his on be at by had are but from or this über naïve 東京 🙂".split()


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(1)
    docs = []
    for d, n in (("code", 70), ("legal", 25), ("prose", 150)):  # uneven domains: shard ranges cut through domains
        for i in range(n):
            k = rng.choice([2, 15, 60, 200, 900])
            docs.append({"text": " ".join(rng.choice(WORDS) for _ in range(k)), "domain": d, "source": f"s-{d}",
                         "doc_id": f"{d}/{i}"})
    out = tmp_path_factory.mktemp("corpus")
    write_corpus(docs, out, val_fraction=0.1)
    # tiny row groups, so a shard reads parts of row groups and skips others
    import pyarrow.parquet as pq

    for f in out.rglob("*.parquet"):
        pq.write_table(pq.read_table(f), f, row_group_size=7, compression="zstd")
    return out


@pytest.mark.parametrize("config", [
    PackConfig(block_size=64),
    PackConfig(block_size=64, blocks_per_batch=50, num_proc=2, min_blocks_per_proc=10),  # small batches, 2 processes
    PackConfig(block_size=80, max_blocks_per_domain=5, cap="spread"),
], ids=["full", "batches-procs", "capped-spread"])
def test_three_shards_merge_byte_identical_to_a_single_pack(corpus, tmp_path, config):
    single = tmp_path / "single"
    pack_corpus(corpus, single, config)
    shards = [tmp_path / f"shard{i}" for i in range(3)]
    for i in (2, 0, 1):  # any order, as on separate machines
        rec = pack_shard(corpus, shards[i], config, (i, 3))
        assert rec["shard"] == i and rec["num_shards"] == 3
    merged = tmp_path / "merged"
    # any order on the command line too
    merge_shards([shards[1], shards[2], shards[0]], merged, num_proc=config.num_proc,
                 blocks_per_batch=config.blocks_per_batch)
    assert tree(merged) == tree(single)  # every file, meta.json included
    assert json.loads((merged / "meta.json").read_text()) == json.loads((single / "meta.json").read_text())
    for split in ("train", "validation"):
        a, b = load_blocks(merged, split), load_blocks(single, split)
        assert a.data.table.equals(b.data.table)  # the Arrow data
        assert a["block_id"] == list(range(len(a)))


def test_shards_split_documents_into_contiguous_ranges(corpus, tmp_path):
    recs = [pack_shard(corpus, tmp_path / f"s{i}", PackConfig(block_size=64), (i, 3)) for i in range(3)]
    for split in ("train", "validation"):
        entries = [r["splits"][split] for r in recs]
        assert [e["first_document"] for e in entries] == [0, entries[0]["documents"],
                                                          entries[0]["documents"] + entries[1]["documents"]]
        assert sum(e["documents"] for e in entries) == entries[0]["total_documents"]
    assert shard_range(2, 3, 10) == (6, 10) and shard_range(0, 3, 2) == (0, 0)


def test_more_shards_than_documents_and_one_shard(corpus, tmp_path):
    config = PackConfig(block_size=64)
    single = tmp_path / "single"
    pack_corpus(corpus, single, config, splits=("validation",))
    n = 40  # more shards than the 23 validation documents: some shards are empty
    dirs = [tmp_path / f"s{i}" for i in range(n)]
    for i, d in enumerate(dirs):
        pack_shard(corpus, d, config, (i, n), splits=("validation",))
    merge_shards(dirs, tmp_path / "merged")
    assert tree(tmp_path / "merged") == tree(single)
    pack_shard(corpus, tmp_path / "one", config, (0, 1), splits=("validation",))
    merge_shards([tmp_path / "one"], tmp_path / "merged1")
    assert tree(tmp_path / "merged1") == tree(single)


def test_read_document_range_matches_the_corpus_order(corpus):
    from curricula.data.corpus import load_corpus, read_manifest
    from curricula.data.shards import _split_files

    m = read_manifest(corpus)
    files = _split_files(corpus, m, sorted(m["domains"]), "train")
    whole = load_corpus(corpus)["train"]
    t = read_document_range(files, 61, 140)
    assert t.column("doc_id").to_pylist() == whole["doc_id"][61:140]
    assert t.schema == pa.schema([("text", pa.string()), ("domain", pa.string()), ("doc_id", pa.string())])


def test_merge_errors_name_the_fix(corpus, tmp_path):
    config = PackConfig(block_size=64)
    s0, s1 = pack_shard(corpus, tmp_path / "s0", config, (0, 3)), pack_shard(corpus, tmp_path / "s1", config, (1, 3))
    assert s0 and s1
    with pytest.raises(PackError, match=r"shard\(s\) 2/3 missing: pack them with `curricula pack CORPUS --shard I/3"):
        merge_shards([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")
    with pytest.raises(PackError, match=r"shard 0/3 is given twice"):
        merge_shards([tmp_path / "s0", tmp_path / "s0", tmp_path / "s1"], tmp_path / "m")
    pack_shard(corpus, tmp_path / "other", PackConfig(block_size=128), (2, 3))
    with pytest.raises(PackError, match=r"shards of different packings \(settings differs"):
        merge_shards([tmp_path / "s0", tmp_path / "s1", tmp_path / "other"], tmp_path / "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PackError, match=r"not a finished shard \(shard.json missing\)"):
        merge_shards([tmp_path / "empty"], tmp_path / "m")
    assert not (tmp_path / "m").exists()
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(PackError, match="--shard"):
            parse_shard(bad)


def test_shard_is_skipped_when_done(corpus, tmp_path):
    config = PackConfig(block_size=64)
    pack_shard(corpus, tmp_path / "s", config, (1, 2))
    before = tree(tmp_path / "s")
    mtime = (tmp_path / "s" / "shard.json").stat().st_mtime_ns
    pack_shard(corpus, tmp_path / "s", config, (1, 2))
    assert (tmp_path / "s" / "shard.json").stat().st_mtime_ns == mtime and tree(tmp_path / "s") == before


def test_cli_shard_and_merge(corpus, tmp_path, capsys):
    single = tmp_path / "single"
    assert main(["pack", str(corpus), "--out", str(single), "--block-size", "64"]) == 0
    for i in range(3):
        assert main(["pack", str(corpus), "--shard", f"{i}/3", "--out", str(tmp_path / f"s{i}"), "--block-size", "64"]) == 0
    assert "merge every shard with `curricula pack merge" in capsys.readouterr().out
    assert main(["pack", "merge", *(str(tmp_path / f"s{i}") for i in range(3)), "--out", str(tmp_path / "m")]) == 0
    assert tree(tmp_path / "m") == tree(single)
    assert main(["pack", "merge", str(tmp_path / "s0"), "--block-size", "256", "--out", str(tmp_path / "m2")]) == 2
    assert "takes its settings from the shards; drop --block-size" in capsys.readouterr().err
    assert main(["pack", str(corpus), str(corpus), "--out", str(tmp_path / "x")]) == 2
    assert "takes one corpus folder" in capsys.readouterr().err
