"""Packing across machines: shard *i* of *n* tokenizes its slice of the corpus; a merge cuts the blocks.

The output of a merge is byte-identical to ``curricula pack`` of the whole corpus (every file, ``meta.json``
included): the expensive part, tokenization (stage 1), is what the shards do, each on its own machine; the merge runs
the same stage 2 as a single pack (``curricula.data.pack.write_blocks``) over the shards' token files in shard
order, so block boundaries, dense block ids, the dropped tail of each domain and the caps are computed once, over the
whole stream, exactly as in a single pack.

Which documents a shard gets: per split, the documents are taken in the order a single pack sees them (the domain
files in domain order, each file's rows in order), and shard *i* of *n* gets the contiguous range
``[floor(i*N/n), floor((i+1)*N/n))`` of those ``N`` documents. A shard reads only the Parquet row groups of its
range (the counts come from ``corpus.json``), so no machine reads the whole corpus.

Layout of a shard folder (written atomically: a crash leaves no half shard)::

    shard.json              shard i of n, the packing settings (tokenizer identity, block size, caps, corpus
                            manifest sha256, domains) and per split its document range and token files
    <split>/tokens*.arrow   the tokenized documents (input_ids with EOS, domain_id, doc_id), memory-mappable

``merge_shards`` checks that the shards are 0..n-1 of the same n, with the same settings, and that their ranges
tile every split, before it writes anything.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curricula.data.corpus import SCHEMA, SPLITS, read_manifest
from curricula.data.pack import (
    FORMAT,
    META,
    PackConfig,
    PackError,
    _fingerprint_of,
    _tokenizer,
    packing_settings,
    read_meta,
    tokenize_documents,
    write_blocks,
)
from curricula.run_layout import atomic_dir, read_json, write_json

SHARD_FORMAT = "curricula-pack-shard/1"
SHARD_META = "shard.json"
COLUMNS = ("text", "domain", "doc_id")


def parse_shard(spec: str) -> tuple[int, int]:
    """``"I/N"`` (0-based I) -> ``(I, N)``."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec))
    if not m:
        raise PackError(f"--shard {spec!r}: write it as I/N, e.g. 0/3 for the first of three shards (I counts from 0)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise PackError(f"--shard {spec}: need 0 <= I < N (I counts from 0: the shards of N=3 are 0/3, 1/3, 2/3)")
    return i, n


def shard_range(i: int, n: int, total: int) -> tuple[int, int]:
    return i * total // n, (i + 1) * total // n


def _split_files(corpus_dir: Path, manifest: dict, domains: list[str], split: str) -> list[tuple[Path, int]]:
    """The split's Parquet files in the order a single pack reads them, with their document counts."""
    return [(corpus_dir / split / manifest["domains"][d]["file"], int(manifest["domains"][d][f"{split}_documents"]))
            for d in domains if manifest["domains"][d][f"{split}_documents"] > 0]


def read_document_range(files: list[tuple[Path, int]], lo: int, hi: int) -> pa.Table:
    """Rows ``[lo, hi)`` of the concatenation of ``files``, reading only the row groups that overlap them."""
    parts = []
    offset = 0
    for path, count in files:
        a, b = max(lo, offset), min(hi, offset + count)
        if a < b:
            pf = pq.ParquetFile(path)
            if pf.metadata.num_rows != count:
                raise PackError(f"{path} has {pf.metadata.num_rows} rows but corpus.json says {count}; the corpus "
                                "changed while packing: rebuild it, then pack every shard again")
            starts = np.concatenate([[0], np.cumsum([pf.metadata.row_group(k).num_rows
                                                     for k in range(pf.num_row_groups)])])
            first = int(np.searchsorted(starts, a - offset, side="right") - 1)
            last = int(np.searchsorted(starts, b - offset, side="left"))
            t = pf.read_row_groups(list(range(first, last)), columns=list(COLUMNS))
            parts.append(t.slice(a - offset - int(starts[first]), b - a))
        offset += count
    schema = pa.schema([SCHEMA.field(c) for c in COLUMNS])
    return pa.concat_tables([p.select(list(COLUMNS)).cast(schema) for p in parts]) if parts else schema.empty_table()


def pack_shard(
    corpus_dir: Path,
    out_dir: Path,
    config: PackConfig,
    shard: tuple[int, int],
    *,
    domains: list[str] | None = None,
    splits: tuple[str, ...] = SPLITS,
    force: bool = False,
    documents: Callable[[str, int, int], pa.Table] | None = None,
) -> dict:
    """Tokenize shard ``shard = (i, n)`` of the corpus into ``out_dir`` (see the module docstring); skips the work
    when ``out_dir`` already holds this shard with the same settings. Returns the shard's ``shard.json``.

    ``documents(split, lo, hi)`` gives the rows ``[lo, hi)`` of ``split`` (``text``, ``domain``, ``doc_id``; in pack
    order: see :func:`shard_documents`) when they come from elsewhere than the corpus' Parquet files (a datatrove
    reader, a stream); the corpus folder is still read for its manifest (settings, counts)."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    i, n = shard
    manifest = read_manifest(corpus_dir)
    domains = sorted(manifest["domains"]) if domains is None else list(domains)
    unknown = [d for d in domains if d not in manifest["domains"]]
    if unknown:
        raise PackError(f"domain(s) {unknown} are not in {corpus_dir}; it has {sorted(manifest['domains'])}")
    settings, corpus_fp = packing_settings(manifest, config, domains)
    wanted = {"format": SHARD_FORMAT, "shard": i, "num_shards": n, "settings": settings, "requested_splits": list(splits)}
    if (out_dir / SHARD_META).is_file() and not force:
        old = read_shard(out_dir)
        if all(old.get(k) == v for k, v in wanted.items()):
            return old
    totals = {s: sum(c for _, c in _split_files(corpus_dir, manifest, domains, s)) for s in splits}
    missing = [s for s in splits if totals[s] == 0]
    if len(missing) == len(splits):
        raise PackError(f"{corpus_dir} has no documents in split(s) {missing}; rebuild it or pick --splits")
    tok = _tokenizer(config.tokenizer)
    domain_ids = {d: k for k, d in enumerate(domains)}
    record = {**wanted, "splits": {}, "empty_splits": missing}
    with atomic_dir(out_dir) as tmp:
        for split in (s for s in splits if totals[s]):
            for name in domains:  # fail here, before the tokenizing, the way the merge would
                if manifest["domains"][name][f"{split}_documents"] == 0:
                    raise PackError(f"domain {name!r} has no documents in the {split} split; drop it or add documents")
            lo, hi = shard_range(i, n, totals[split])
            entry = {"first_document": lo, "documents": hi - lo, "total_documents": totals[split], "files": []}
            if hi > lo:
                table = (read_document_range(_split_files(corpus_dir, manifest, domains, split), lo, hi)
                         if documents is None else documents(split, lo, hi))
                if table.num_rows != hi - lo:
                    raise PackError(f"shard {i}/{n} got {table.num_rows} {split} documents, expected {hi - lo}")
                fp = _fingerprint_of(corpus_fp, tok.identity.to_dict(), config, split, domains)
                work = tmp / split
                work.mkdir()
                ds = Dataset(InMemoryTable(table), fingerprint=f"shard-{fp}-{i}-{n}")
                tokens = tokenize_documents(ds, domain_ids, config, work, f"{fp}-{i}-{n}", split)
                entry["files"] = [Path(f["filename"]).resolve().relative_to(tmp.resolve()).as_posix()
                                  for f in tokens.cache_files]
                entry["tokens"] = int(pc.sum(pc.list_value_length(tokens.data.column("input_ids"))).as_py())
                del tokens, ds
            record["splits"][split] = entry
        write_json(tmp / SHARD_META, record, indent=2, sort_keys=True)
    return record


def shard_documents(corpus_dir: Path, shard: tuple[int, int], *, domains: list[str] | None = None,
                    splits: tuple[str, ...] = SPLITS, batch_rows: int = 4096) -> Iterator[tuple[str, int, pa.Table]]:
    """The documents of shard ``shard = (i, n)``, what ``pack_shard`` tokenizes: per split, ``(split, index of the
    batch's first document in the split, rows)`` in pack order, reading only the Parquet row groups of the range."""
    corpus_dir = Path(corpus_dir)
    manifest = read_manifest(corpus_dir)
    domains = sorted(manifest["domains"]) if domains is None else list(domains)
    for split in splits:
        files = _split_files(corpus_dir, manifest, domains, split)
        lo, hi = shard_range(*shard, sum(c for _, c in files))
        if hi > lo:
            for batch in read_document_range(files, lo, hi).to_batches(max_chunksize=batch_rows):
                yield split, lo, pa.Table.from_batches([batch])
                lo += batch.num_rows


def read_shard(shard_dir: Path) -> dict:
    path = Path(shard_dir) / SHARD_META
    if not path.is_file():
        raise PackError(f"{shard_dir} is not a finished shard ({SHARD_META} missing): pack it with "
                        f"`curricula pack CORPUS --shard I/N --out {shard_dir}`")
    rec = read_json(path, "shard record", f"pack the shard again with `curricula pack CORPUS --shard I/N --out "
                                          f"{shard_dir} --force`")
    if rec.get("format") != SHARD_FORMAT:
        raise PackError(f"{path} is not a curricula pack shard (format {rec.get('format')!r}, expected {SHARD_FORMAT})")
    return rec


def merge_shards(shard_dirs: list[Path], out_dir: Path, *, num_proc: int = 1, force: bool = False,
                 blocks_per_batch: int = PackConfig.blocks_per_batch) -> dict:
    """Merge the shards ``0..n-1`` of one corpus into ``out_dir``: the same files, byte for byte, as packing the
    corpus at once with the shards' settings (and the same ``blocks_per_batch``, the Arrow record-batch size of the
    output, which is not a packing setting: the default on both sides). Skips the work when ``out_dir`` already
    holds that packing."""
    shard_dirs = [Path(d) for d in shard_dirs]
    if not shard_dirs:
        raise PackError("no shard folders given: pass every SHARD_DIR written by `curricula pack CORPUS --shard I/N`")
    records = [read_shard(d) for d in shard_dirs]
    first = records[0]
    n = first["num_shards"]
    for d, r in zip(shard_dirs, records):
        for key in ("num_shards", "settings", "requested_splits"):
            if r[key] != first[key]:
                raise PackError(f"{d} and {shard_dirs[0]} are shards of different packings ({key} differs: "
                                f"{r[key]!r} vs {first[key]!r}); pack every shard with the same corpus and options")
    by_index: dict[int, Path] = {}
    for d, r in zip(shard_dirs, records):
        if r["shard"] in by_index:
            raise PackError(f"shard {r['shard']}/{n} is given twice: {by_index[r['shard']]} and {d}")
        by_index[r["shard"]] = d
    absent = [k for k in range(n) if k not in by_index]
    if absent:
        raise PackError(f"shard(s) {', '.join(f'{k}/{n}' for k in absent)} missing: pack them with "
                        f"`curricula pack CORPUS --shard I/{n} --out SHARD_DIR` and pass every shard folder")
    order = sorted(range(len(records)), key=lambda k: records[k]["shard"])
    records = [records[k] for k in order]
    shard_dirs = [shard_dirs[k] for k in order]
    settings = first["settings"]
    splits = tuple(first["requested_splits"])
    meta_path = Path(out_dir) / META
    if meta_path.is_file() and not force:
        old = {"cap": "first", **read_meta(out_dir)}
        if all(old.get(k) == v for k, v in settings.items()) and all(s in old["splits"] or s in old["empty_splits"] for s in splits):
            return old
    missing = first["empty_splits"]
    for split in (s for s in splits if s not in missing):
        expect = 0
        for d, r in zip(shard_dirs, records):
            e = r["splits"][split]
            if e["first_document"] != expect:
                raise PackError(f"{d}: its {split} documents start at {e['first_document']}, expected {expect}; "
                                "pack every shard with the same corpus")
            expect += e["documents"]
        if expect != records[0]["splits"][split]["total_documents"]:
            raise PackError(f"the shards hold {expect} of {records[0]['splits'][split]['total_documents']} {split} "
                            "documents; pack every shard with the same corpus")
    config = PackConfig(tokenizer=settings["tokenizer_spec"], block_size=settings["block_size"], num_proc=num_proc,
                        max_blocks_per_domain=settings["max_blocks_per_domain"], cap=settings["cap"],
                        blocks_per_batch=blocks_per_batch)
    out_dir = Path(out_dir)
    domains = settings["domain_names"]
    meta = {"format": FORMAT, **settings, "splits": {}, "empty_splits": missing}
    for split in (s for s in splits if s not in missing):
        files = tuple(str(d / f) for d, r in zip(shard_dirs, records) for f in r["splits"][split]["files"])
        for f in files:
            if not Path(f).is_file():
                raise PackError(f"{f} is missing: the shard folder is incomplete; pack that shard again with --force")
        fp = _fingerprint_of(settings["corpus_manifest_sha256"], settings["tokenizer"], config, split, domains)
        meta["splits"][split] = write_blocks(files, domains, config, out_dir, split, fp)
    shutil.rmtree(out_dir / ".work", ignore_errors=True)
    write_json(meta_path, meta, indent=2, sort_keys=True)
    return meta
