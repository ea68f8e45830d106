"""Packing with datatrove's LocalPipelineExecutor (N tasks, then the merge) gives the bytes of `curricula pack`."""

import hashlib
import itertools
import random
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("datatrove")

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import ParquetReader  # noqa: E402

from curricula.cli import main  # noqa: E402
from curricula.data.datatrove import CurriculaCorpusReader, CurriculaMerge, CurriculaPack  # noqa: E402
from curricula.data.corpus import write_corpus  # noqa: E402
from curricula.data.pack import PackConfig, PackError  # noqa: E402
from curricula.data.shards import pack_shard  # noqa: E402

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
    import pyarrow.parquet as pq

    for f in out.rglob("*.parquet"):  # tiny row groups: task ranges start and end inside row groups
        pq.write_table(pq.read_table(f), f, row_group_size=7, compression="zstd")
    return out


def executors(corpus, root: Path, config: PackConfig, tasks: int, workers: int, num_shards: int | None = None):
    pack = LocalPipelineExecutor([CurriculaCorpusReader(corpus), CurriculaPack(corpus, root / "shards", config)],
                                 tasks=tasks, workers=workers, logging_dir=str(root / "logs" / "pack"))
    merge = LocalPipelineExecutor([CurriculaMerge(root / "shards", root / "packed", num_shards=num_shards or tasks)],
                                  tasks=1, logging_dir=str(root / "logs" / "merge"), depends=pack)
    return pack, merge


@pytest.mark.parametrize("tasks,workers,config,options", [
    # 16-document batches: slices of the input's Arrow chunks, whose layout must not reach the shards' token files
    (2, 1, PackConfig(block_size=64, docs_per_batch=16), []),
    (2, 2, PackConfig(block_size=64), []),  # tasks in a pool of 2 processes
    # num_proc=2 falls back to 1 inside the pool's daemonic workers (the same bytes)
    (3, 2, PackConfig(block_size=80, max_blocks_per_domain=5, cap="spread", num_proc=2),
     ["--max-blocks-per-domain", "5", "--cap", "spread"]),
], ids=["2-tasks-1-worker", "2-tasks-2-workers", "3-tasks-capped-spread"])
def test_executor_pack_and_merge_byte_identical_to_curricula_pack(corpus, tmp_path, tasks, workers, config, options):
    _, merge = executors(corpus, tmp_path, config, tasks, workers)
    merge.run()  # runs the pack executor first (depends=), then the merge
    single = tmp_path / "single"
    assert main(["pack", str(corpus), "--out", str(single), "--block-size", str(config.block_size), *options]) == 0
    merged = tree(tmp_path / "packed")
    assert "meta.json" in merged and any(k.startswith("validation/") for k in merged)
    assert merged == tree(single)  # every file's sha256, meta.json included
    # each task's folder is `curricula pack --shard i/N`'s, byte for byte (num_proc=1: one token file per split)
    for i in range(tasks):
        pack_shard(corpus, tmp_path / "ref" / str(i), replace(config, num_proc=1), (i, tasks))
        assert tree(tmp_path / "shards" / f"{i:05d}") == tree(tmp_path / "ref" / str(i))


def test_a_wrong_partition_is_refused(corpus, tmp_path):
    config = PackConfig(block_size=64)
    step = CurriculaPack(corpus, tmp_path / "s", config)
    with pytest.raises(PackError, match="another shard"):  # task 1 of 3 handed shard 0's documents
        list(step.run(CurriculaCorpusReader(corpus).run(None, 0, 3), 1, 3))
    more = itertools.chain(*(CurriculaCorpusReader(corpus).run(None, i, 3) for i in (1, 2)))
    with pytest.raises(PackError, match="more documents"):  # task 1 of 3 handed shards 1 and 2
        list(step.run(more, 1, 3))
    assert not any((tmp_path / "s").glob("*"))  # nothing written, not even a temporary folder
    # datatrove's own sharding (whole files, round robin) is not curricula's: refused, not packed differently
    reader = ParquetReader(str(corpus), glob_pattern="*/*.parquet", id_key="doc_id")
    pack = LocalPipelineExecutor([reader, CurriculaPack(corpus, tmp_path / "dt", config)], tasks=2, workers=1,
                                 logging_dir=str(tmp_path / "logs"))
    with pytest.raises(PackError, match="no doc_index"):
        pack.run()
    assert not any((tmp_path / "dt").glob("*"))
    # a merge refuses a missing shard, and runs as one task only
    _, merge = executors(corpus, tmp_path / "m", config, tasks=2, workers=1, num_shards=3)
    with pytest.raises(PackError, match="missing"):
        merge.run()
    with pytest.raises(PackError, match="tasks=1"):
        LocalPipelineExecutor([CurriculaMerge(tmp_path / "m" / "shards", tmp_path / "m" / "x")], tasks=2, workers=1,
                              logging_dir=str(tmp_path / "logs-merge")).run()
