"""Tokenize and pack: documents → tokens (EOS after each document) → fixed-length blocks, packed within a domain.

Each domain's documents are concatenated in corpus order, each followed by EOS, and cut into ``block_size`` blocks;
the last partial block of each domain (its *tail*) is dropped and counted. Blocks get dense ids ``0..N-1`` in domain
order, so ``block_id`` is both the row number and a stable name that curriculum logs can refer to.

Both stages are ``datasets.map(batched=True, num_proc=...)`` over memory-mapped Arrow: stage 1 writes per-document
token lists; stage 2 maps over block ids and slices each block out of the flat token column (zero-copy until the
final write). Fingerprints are derived from the inputs, so the same inputs give byte-identical output.

Output (``out_dir``)::

    meta.json               tokenizer identity, block_size, per-split, per-domain documents/tokens/blocks/tail
    <split>/                a ``datasets`` dataset (``load_from_disk``, memory-mapped) with columns
                            block_id int64, domain_id int32, input_ids int32[block_size],
                            doc_ids list<string> (documents the block draws from), doc_offset int64 (where the block
                            starts inside its first document, in tokens)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curricula.errors import CurriculaError
from curricula.run_layout import atomic_dir, read_json, write_json
from curricula.data.corpus import SPLITS, load_corpus, read_manifest
from curricula.data.tokenizers import load_tokenizer

FORMAT = "curricula-packed/1"
META = "meta.json"
MIN_BLOCK, MAX_BLOCK = 64, 2048


class PackError(CurriculaError):
    """Bad packing input; the message names the problem and the fix."""


CAPS = ("first", "spread")


@dataclass(frozen=True)
class PackConfig:
    tokenizer: str = "gpt2"
    block_size: int = 128
    num_proc: int = 1  # datasets.map worker processes
    num_threads: int = 1  # tokenizer threads inside each process (tiktoken releases the GIL)
    docs_per_batch: int = 256
    blocks_per_batch: int = 2048
    # slicing blocks is cheap: fork workers for it only when there are this many blocks per process
    min_blocks_per_proc: int = 1_000_000
    # keep N blocks per domain (small, balanced runs); None keeps every block
    max_blocks_per_domain: int | None = None
    # which N: "first" (the domain's first N blocks, i.e. its first documents: often only its first source) or
    # "spread" (N blocks evenly spaced over the whole domain, so every source is represented)
    cap: str = "first"

    def __post_init__(self):
        if not MIN_BLOCK <= self.block_size <= MAX_BLOCK:
            raise PackError(f"block_size={self.block_size} is outside [{MIN_BLOCK}, {MAX_BLOCK}]; pick e.g. 128 or 1024")
        if self.cap not in CAPS:
            raise PackError(f"cap={self.cap!r}: use one of {CAPS} (which max_blocks_per_domain blocks to keep)")
        if self.num_proc < 1 or self.num_threads < 1:
            raise PackError(f"num_proc={self.num_proc} and num_threads={self.num_threads} must be >= 1")


@lru_cache(maxsize=4)
def _tokenizer(spec: str):
    return load_tokenizer(spec)


def _tokenize_batch(batch: pa.Table, tokenizer, domain_ids: dict[str, int], num_threads: int) -> pa.Table:
    """Documents -> token lists with EOS after each (the one EOS rule): ``tokenizer`` is a spec or a tokenizer."""
    tok = _tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
    eos = np.array([tok.eos_id], dtype=np.uint32)
    ids = tok.encode_batch_arrays(batch.column("text").to_pylist(), num_threads=num_threads)
    lengths = np.fromiter((len(x) + 1 for x in ids), dtype=np.int64, count=len(ids))
    offsets = np.zeros(len(ids) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    values = np.concatenate([part for x in ids for part in (x, eos)]).view(np.int32)
    dom = np.array([domain_ids[d] for d in batch.column("domain").to_pylist()], dtype=np.int32)
    return pa.table(
        {
            "input_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values)),
            "domain_id": pa.array(dom),
            # a fresh column, not a slice of the input's: Arrow IPC pads a sliced buffer by what follows it in memory,
            # so the token files' bytes would depend on where the documents came from (Parquet, datatrove, ...)
            "doc_id": pa.array(batch.column("doc_id").to_pylist(), pa.string()),
        }
    )


@lru_cache(maxsize=2)
def _flat_tokens(files: tuple[str, ...]) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """The tokenized documents as one flat, memory-mapped token column (opened once per worker)."""
    from datasets import Dataset, concatenate_datasets

    ds = concatenate_datasets([Dataset.from_file(f) for f in files])
    return pc.list_flatten(ds.data.column("input_ids")), ds.data.column("doc_id")


def _pack_batch(
    batch: pa.Table,
    token_files: tuple[str, ...],
    block_size: int,
    block_start: np.ndarray,
    block_domain: np.ndarray,
    doc_start: np.ndarray,
) -> pa.Table:
    flat, doc_ids = _flat_tokens(token_files)
    return slice_blocks(flat, doc_ids, batch.column("block_id").to_numpy(), block_size, block_start, block_domain,
                        doc_start)


def slice_blocks(flat, doc_ids, bids: np.ndarray, block_size: int, block_start: np.ndarray, block_domain: np.ndarray,
                 doc_start: np.ndarray) -> pa.Table:
    """The rows of blocks ``bids``: their tokens sliced out of the flat token column ``flat``, their documents
    (``doc_ids``, one per document) and where each starts in its first document."""
    starts = block_start[bids]
    rows = np.empty((len(bids), block_size), dtype=np.int32)
    # consecutive blocks of one domain are contiguous in the flat token column: slice them in one go
    cut = np.flatnonzero(np.diff(starts) != block_size) + 1
    for seg in np.split(np.arange(len(bids)), cut):
        s = int(starts[seg[0]])
        rows[seg] = flat.slice(s, len(seg) * block_size).to_numpy().reshape(len(seg), block_size)
    first = np.searchsorted(doc_start, starts, side="right") - 1
    last = np.searchsorted(doc_start, starts + block_size - 1, side="right") - 1
    counts = last - first + 1
    offsets = np.zeros(len(bids) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    doc_rows = np.repeat(first, counts) + (np.arange(int(offsets[-1])) - np.repeat(offsets[:-1], counts))
    return pa.table(
        {
            "block_id": pa.array(bids.astype(np.int64)),
            "domain_id": pa.array(block_domain[bids].astype(np.int32)),
            "input_ids": pa.FixedSizeListArray.from_arrays(pa.array(rows.reshape(-1)), block_size),
            "doc_ids": pa.ListArray.from_arrays(pa.array(offsets), doc_ids.take(pa.array(doc_rows)).combine_chunks()),
            "doc_offset": pa.array((starts - doc_start[first]).astype(np.int64)),
        }
    )


def _procs(num_proc: int, n_units: int) -> int | None:
    """datasets forks a pool even for num_proc=1; None keeps the work in this process."""
    n = min(num_proc, n_units)
    return n if n > 1 else None


def _fingerprint(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fingerprint_of(input_fingerprint: str, tokenizer_identity: dict, config: PackConfig, split: str,
                    domains: list[str]) -> str:
    """What the output of one split depends on (the datasets fingerprints of both stages derive from it)."""
    return _fingerprint(input_fingerprint, tokenizer_identity, config.block_size, split, domains,
                        config.max_blocks_per_domain, *([config.cap] if config.cap != "first" else []))


def tokenize_documents(ds, domain_ids: dict[str, int], config: PackConfig, work: Path, fp: str, split: str):
    """Stage 1: every document of ``ds`` (``text``, ``domain``, ``doc_id``; grouped by domain) to its tokens plus
    EOS, written as Arrow under ``work``; returns the memory-mapped ``datasets.Dataset`` (``input_ids``,
    ``domain_id``, ``doc_id``)."""
    return ds.with_format("arrow").map(
        _tokenize_batch,
        fn_kwargs={"tokenizer": config.tokenizer, "domain_ids": domain_ids, "num_threads": config.num_threads},
        batched=True,
        batch_size=config.docs_per_batch,
        num_proc=_procs(config.num_proc, len(ds)),
        remove_columns=ds.column_names,
        cache_file_name=str(work / "tokens.arrow"),
        new_fingerprint=f"tok-{fp}",
        desc=f"tokenize {split}",
    )


@dataclass(frozen=True)
class BlockLayout:
    """Where every block starts in the flat token stream of a split, and the per-domain counts (stage 2's plan)."""

    block_start: np.ndarray  # int64, one per block, in block-id order
    block_domain: np.ndarray  # int32
    doc_start: np.ndarray  # int64, len(documents) + 1: where each document starts in the flat stream
    per_domain: dict

    @property
    def n_blocks(self) -> int:
        return len(self.block_start)

    def stats(self) -> dict:
        return {
            "documents": int(len(self.doc_start) - 1),
            "tokens": int(self.doc_start[-1]),
            "blocks": self.n_blocks,
            "dropped_tail_tokens": int(sum(v["dropped_tail_tokens"] for v in self.per_domain.values())),
            "domains": self.per_domain,
        }


def layout_blocks(dom: np.ndarray, lengths: np.ndarray, domains: list[str], config: PackConfig, split: str,
                  where: str | None = None) -> BlockLayout:
    """Cut each domain's token stream (documents in order, EOS after each; ``lengths`` include the EOS) into
    ``block_size`` blocks from the domain's first token: dense block ids in domain order, the last partial block of
    each domain dropped and counted, ``max_blocks_per_domain``/``cap`` applied. ``dom`` must be grouped by domain.
    ``where`` names the documents in errors (default: "the SPLIT split")."""
    where = where or f"the {split} split"
    doc_start = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=doc_start[1:])
    per_domain, block_start, block_domain = {}, [], []
    n_blocks_total = 0
    for d, name in enumerate(domains):
        docs = np.flatnonzero(dom == d)
        if len(docs) == 0:
            raise PackError(f"domain {name!r} has no documents in {where}; drop it or add documents")
        a, b = int(doc_start[docs[0]]), int(doc_start[docs[-1] + 1])
        full_blocks = (b - a) // config.block_size
        n_blocks = full_blocks if config.max_blocks_per_domain is None else min(full_blocks, config.max_blocks_per_domain)
        if n_blocks == 0:
            raise PackError(
                f"domain {name!r} has {b - a} tokens in {where}, fewer than block_size={config.block_size}, "
                "so it would yield no block; lower --block-size (block_size) or add documents to the domain"
            )
        picked = np.arange(n_blocks, dtype=np.int64)
        if config.cap == "spread" and n_blocks < full_blocks:  # evenly spaced, distinct, in order
            picked = np.floor(np.arange(n_blocks, dtype=np.float64) * full_blocks / n_blocks).astype(np.int64)
        block_start.append(a + config.block_size * picked)
        block_domain.append(np.full(n_blocks, d, dtype=np.int32))
        per_domain[name] = {
            "domain_id": d,
            "documents": int(len(docs)),
            "tokens": b - a,
            "blocks": int(n_blocks),
            "block_id_start": n_blocks_total,
            "dropped_tail_tokens": (b - a) - full_blocks * config.block_size,
            "capped_blocks": full_blocks - n_blocks,
            "longest_document_tokens": int(lengths[docs].max()),
        }
        n_blocks_total += n_blocks
    return BlockLayout(np.concatenate(block_start), np.concatenate(block_domain), doc_start, per_domain)


def write_blocks(token_files: tuple[str, ...], domains: list[str], config: PackConfig, out_dir: Path, split: str,
                 fp: str) -> dict:
    """Stage 2: lay out the blocks of the tokenized documents in ``token_files`` (in order) and write them as
    ``out_dir/split`` (a ``datasets`` folder, atomically); returns the split's statistics for ``meta.json``."""
    from datasets import Dataset, concatenate_datasets
    from datasets.table import InMemoryTable

    work = out_dir / ".work" / split
    work.mkdir(parents=True, exist_ok=True)
    tokens = concatenate_datasets([Dataset.from_file(f) for f in token_files])
    dom = tokens.data.column("domain_id").to_numpy()
    lengths = pc.list_value_length(tokens.data.column("input_ids")).to_numpy().astype(np.int64)
    del tokens
    layout = layout_blocks(dom, lengths, domains, config, split)
    ids = Dataset(InMemoryTable(pa.table({"block_id": np.arange(layout.n_blocks, dtype=np.int64)})), fingerprint=f"ids-{fp}")
    blocks = ids.with_format("arrow").map(
        _pack_batch,
        fn_kwargs={
            "token_files": tuple(token_files),
            "block_size": config.block_size,
            "block_start": layout.block_start,
            "block_domain": layout.block_domain,
            "doc_start": layout.doc_start,
        },
        batched=True,
        batch_size=config.blocks_per_batch,
        num_proc=_procs(config.num_proc, layout.n_blocks // config.min_blocks_per_proc),
        cache_file_name=str(work / "blocks.arrow"),
        new_fingerprint=f"pack-{fp}",
        desc=f"pack {split}",
    )
    with atomic_dir(out_dir / split) as tmp:
        blocks.with_format(None).save_to_disk(str(tmp), num_shards=1)
    _flat_tokens.cache_clear()
    del blocks
    shutil.rmtree(work)
    return layout.stats()


def check_documents(ds, domains: list[str], split: str) -> None:
    for col in ("text", "domain", "doc_id"):
        if col not in ds.column_names:
            hint = "pass --text-column NAME" if col == "text" else "build it with `curricula corpus build`"
            raise PackError(f"the {split} split has no {col!r} column (columns: {ds.column_names}); {hint}")
    if len(ds) == 0:
        raise PackError(f"the {split} split is empty: there is nothing to pack; check the corpus")
    unknown = sorted(set(ds.unique("domain")) - set(domains))
    if unknown:
        raise PackError(f"documents have domain(s) {unknown} outside the domain list {domains}")


def pack_split(ds, domains: list[str], config: PackConfig, out_dir: Path, split: str, input_fingerprint: str) -> dict:
    """Pack one split (a ``datasets.Dataset`` with ``text``, ``domain``, ``doc_id``) into ``out_dir/split``."""
    check_documents(ds, domains, split)
    domain_ids = {d: i for i, d in enumerate(domains)}
    tok = _tokenizer(config.tokenizer)
    # group documents by domain (stable), so each domain's tokens are contiguous
    dom = np.array([domain_ids[d] for d in ds["domain"]], dtype=np.int32)
    order = np.argsort(dom, kind="stable")
    if np.any(order != np.arange(len(order))):
        ds = ds.select(order)
    fp = _fingerprint_of(input_fingerprint, tok.identity.to_dict(), config, split, domains)
    work = out_dir / ".work" / split
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    tokens = tokenize_documents(ds, domain_ids, config, work, fp, split)
    token_files = tuple(f["filename"] for f in tokens.cache_files)
    del tokens
    return write_blocks(token_files, domains, config, out_dir, split, fp)


def packing_settings(manifest: dict, config: PackConfig, domains: list[str]) -> tuple[dict, str]:
    """What a packing of a corpus is (recorded in ``meta.json``; equal settings mean an equal output), and the
    corpus fingerprint (sha256 of its manifest)."""
    corpus_fp = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    settings = {
        "tokenizer": _tokenizer(config.tokenizer).identity.to_dict(),
        "tokenizer_spec": config.tokenizer,
        "block_size": config.block_size,
        "max_blocks_per_domain": config.max_blocks_per_domain,
        "cap": config.cap,
        "corpus_manifest_sha256": corpus_fp,
        "domain_names": domains,
    }
    return settings, corpus_fp


def pack_corpus(
    corpus_dir: Path,
    out_dir: Path,
    config: PackConfig,
    *,
    domains: list[str] | None = None,
    splits: tuple[str, ...] = SPLITS,
    force: bool = False,
) -> dict:
    """Pack a corpus made by ``write_corpus``; skips the work when ``out_dir`` already holds the same packing."""
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    manifest = read_manifest(corpus_dir)
    domains = sorted(manifest["domains"]) if domains is None else list(domains)
    wanted, corpus_fp = packing_settings(manifest, config, domains)
    meta_path = out_dir / META
    if meta_path.is_file() and not force:
        old = {"cap": "first", **read_meta(out_dir)}  # packings from before --cap kept the first blocks
        if all(old.get(k) == v for k, v in wanted.items()) and all(s in old["splits"] or s in old["empty_splits"] for s in splits):
            return old
    data = load_corpus(corpus_dir, domains)
    missing = [s for s in splits if s not in data]
    if missing and len(missing) == len(splits):
        raise PackError(f"{corpus_dir} has no documents in split(s) {missing}; rebuild it or pick --splits")
    meta = {"format": FORMAT, **wanted, "splits": {}, "empty_splits": missing}
    for split in (s for s in splits if s in data):
        meta["splits"][split] = pack_split(data[split], domains, config, out_dir, split, corpus_fp)
    shutil.rmtree(out_dir / ".work", ignore_errors=True)
    write_json(meta_path, meta, indent=2, sort_keys=True)
    return meta


def read_meta(packed_dir: Path) -> dict:
    path = Path(packed_dir) / META
    if not path.is_file():
        raise PackError(f"{packed_dir} holds no packed data ({META} missing); run `curricula pack` first")
    return read_json(path, "packing metadata", f"re-pack with `curricula pack CORPUS --out {packed_dir} --force`")


def load_blocks(packed_dir: Path, split: str = "train"):
    """A packed split as a memory-mapped ``datasets.Dataset``."""
    from datasets import load_from_disk

    meta = read_meta(packed_dir)
    if split not in meta["splits"]:
        raise PackError(f"{packed_dir} has no {split!r} split; it has {sorted(meta['splits'])}")
    folder = Path(packed_dir) / split
    try:
        return load_from_disk(str(folder))
    except (FileNotFoundError, OSError, ValueError) as err:
        missing = [f for f in ("dataset_info.json", "state.json") if not (folder / f).is_file()]
        arrows = sorted(folder.glob("*.arrow")) if folder.is_dir() else []
        what = (f"it lacks {missing}" if missing else "no .arrow file" if not arrows
                else f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        raise PackError(f"the packed split {folder} cannot be read ({what}): a file is missing or damaged; pack the "
                        f"corpus again into this folder (`curricula pack CORPUS --out {packed_dir} --force` with the "
                        "same settings) or point to another packed folder") from None


# ---------------------------------------------------------------------------------------------------------------
# In memory: a datasets.Dataset in, dense domain-pure blocks out (the same packing as `curricula pack`)

SINGLE_DOMAIN = "all"  # the domain name when there is no domain column


def _as_tokenizer(tokenizer):
    """A tokenizer spec (as ``load_tokenizer`` takes it), a ``transformers`` tokenizer object (read from its folder,
    or saved to a temporary one), or an object with the curricula tokenizer interface."""
    if isinstance(tokenizer, (str, Path)):
        return _tokenizer(str(tokenizer))
    if callable(getattr(tokenizer, "save_pretrained", None)) and not hasattr(tokenizer, "encode_batch_arrays"):
        folder = Path(str(getattr(tokenizer, "name_or_path", "") or ""))
        if not (folder / "tokenizer.json").is_file():
            import tempfile

            folder = Path(tempfile.mkdtemp(prefix="curricula-tokenizer-"))
            tokenizer.save_pretrained(str(folder))
        return _tokenizer(str(folder))
    missing = [a for a in ("encode_batch_arrays", "eos_id") if not hasattr(tokenizer, a)]
    if missing:
        raise PackError(
            f"tokenizer {type(tokenizer).__name__} lacks {missing}: pass a spec ('gpt2', 'tiktoken:FILE', an HF "
            "tokenizer folder) or a curricula tokenizer (curricula.data.tokenizers.load_tokenizer(spec)); for a "
            "transformers tokenizer, save it with save_pretrained(folder) and pass the folder"
        )
    return tokenizer


def _domain_ids(ds, domain_column: str | None, domain_names: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """Each row's domain id and the domain names (ids index them)."""
    from datasets import ClassLabel

    n = len(ds)
    if domain_column is None:
        if domain_names is not None and len(domain_names) != 1:
            raise PackError(
                f"domain_names={list(domain_names)} names {len(domain_names)} domains but there is no domain column "
                "to say which document is in which: pass domain_column=NAME (the column holding each row's domain), "
                "or one name for all rows"
            )
        return np.zeros(n, dtype=np.int32), list(domain_names or [SINGLE_DOMAIN])
    if domain_column not in ds.column_names:
        raise PackError(f"the dataset has no {domain_column!r} column for domain_column (columns: {ds.column_names}); "
                        "pass the name of the column that holds each row's domain, or domain_column=None for one domain")
    feature = ds.features[domain_column]
    values = ds.data.column(domain_column)
    if isinstance(feature, ClassLabel):
        names = list(domain_names) if domain_names is not None else list(feature.names)
        if domain_names is not None and list(domain_names) != list(feature.names):
            raise PackError(f"domain_names={list(domain_names)} differ from the ClassLabel names of "
                            f"{domain_column!r} ({feature.names}); leave domain_names out to use the ClassLabel's")
        ids = values.to_numpy().astype(np.int64)
    elif pa.types.is_integer(values.type):
        if domain_names is None:
            raise PackError(
                f"the domain column {domain_column!r} holds integer ids but nothing names them: pass "
                "domain_names=[name of id 0, name of id 1, ...], or make the column a datasets.ClassLabel"
            )
        names = list(domain_names)
        ids = values.to_numpy().astype(np.int64)
    else:
        text = [None if v is None else str(v) for v in values.to_pylist()]
        if any(v is None for v in text):
            raise PackError(f"the domain column {domain_column!r} has missing values (row {text.index(None)}); "
                            "give every row a domain")
        present = sorted(set(text))
        names = list(domain_names) if domain_names is not None else present
        unknown = sorted(set(present) - set(names))
        if unknown:
            raise PackError(f"rows have domain(s) {unknown} that are not in domain_names={names}; add them or drop "
                            "those rows")
        index = {d: i for i, d in enumerate(names)}
        ids = np.fromiter((index[v] for v in text), dtype=np.int64, count=n)
    if len(set(names)) != len(names):
        raise PackError(f"domain_names={names} has duplicates; each domain needs one name")
    if n and (ids.min() < 0 or ids.max() >= len(names)):
        raise PackError(f"domain ids in {domain_column!r} range over {int(ids.min())}..{int(ids.max())} but there are "
                        f"{len(names)} domain names ({names})")
    return ids.astype(np.int32), names


def _token_table(ds, tok, *, text_column: str, input_ids_column: str, dom: np.ndarray, names: list[str],
                 doc_ids: pa.Array, num_proc: int, num_threads: int) -> pa.Table:
    """``input_ids`` (a document's tokens + EOS), ``domain_id``, ``doc_id``, in ``ds`` order."""
    from datasets import Dataset
    from datasets.table import InMemoryTable

    if tok is not None and text_column in ds.column_names:
        docs = pa.table({"text": ds.data.column(text_column).cast(pa.string()),
                         "domain": pa.array([names[d] for d in dom], pa.string()), "doc_id": doc_ids})
        work = Dataset(InMemoryTable(docs))
        tokens = work.with_format("arrow").map(
            _tokenize_batch, fn_kwargs={"tokenizer": tok, "domain_ids": {d: i for i, d in enumerate(names)},
                                        "num_threads": num_threads},
            batched=True, batch_size=PackConfig.docs_per_batch, num_proc=_procs(num_proc, len(work)),
            remove_columns=work.column_names, desc="tokenize",
        )
        return tokens.data.table
    # already tokenized: each row is a document; EOS after each when the tokenizer is known (as `curricula pack`)
    col = ds.data.column(input_ids_column).combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise PackError(f"the {input_ids_column!r} column holds {col.type}, not lists of token ids")
    col = col.cast(pa.list_(pa.int32()))
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.int32)
    if tok is not None:
        starts = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        values = np.insert(values, starts[1:], np.int32(tok.eos_id))
        lengths = lengths + 1
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.table({"input_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.int32())),
                     "domain_id": pa.array(dom, pa.int32()), "doc_id": doc_ids})


def pack_dataset(
    ds,
    *legacy,
    tokenizer=None,
    block_size: int | None = None,
    text_column: str = "text",
    domain_column: str | None = None,
    input_ids_column: str = "input_ids",
    domain_names: list[str] | None = None,
    num_proc: int = 1,
    num_threads: int = 1,
):
    """Pack a ``datasets.Dataset`` in memory into dense, domain-pure blocks, the way ``curricula pack`` does.

    Every row is a document. With a ``tokenizer`` (a spec as :func:`curricula.data.tokenizers.load_tokenizer` takes
    it, e.g. ``"gpt2"`` or an HF tokenizer folder, or a tokenizer object with that interface) the ``text_column``
    is tokenized; with ``tokenizer=None`` the rows' ``input_ids_column`` are taken as they are (rows may have any
    length). EOS follows every document when the tokenizer is known (pre-tokenized rows with ``tokenizer`` given get
    its EOS appended; with ``tokenizer=None`` nothing is appended, as TRL's packing does). Documents are grouped by
    domain (stable), each domain's tokens are cut into ``block_size`` blocks from its first token, the last partial
    block of each domain is dropped: the same functions as ``curricula pack``, so the same documents and tokenizer
    give the same blocks.

    Domains: ``domain_column`` holds each row's domain: names (ids in sorted order, or in the order of
    ``domain_names``), integer ids (named by ``domain_names``) or a ``ClassLabel``; without it every row is one
    domain (``domain_names[0]`` or ``"all"``).

    Returns a ``datasets.Dataset`` with ``block_id`` (dense ``0..N-1``, in domain order), ``domain_id`` (a
    ``datasets.ClassLabel`` carrying the domain names, see :func:`domain_names_of`), ``input_ids``
    (``block_size`` int32), ``doc_ids`` (the documents the block draws from: the ``doc_id`` column if there is one,
    else row numbers) and ``doc_offset``. Packing statistics (per domain documents, tokens, blocks, dropped tail)
    are in ``result.info.description`` as JSON.
    """
    if legacy:  # the former signature (ds, domains, config, out_dir, split, fingerprint): the on-disk split packer
        import warnings

        warnings.warn("pack_dataset(ds, domains, config, out_dir, split, fingerprint) is now pack_split(...); "
                      "pack_dataset packs in memory", DeprecationWarning, stacklevel=2)
        return pack_split(ds, *legacy)
    from datasets import ClassLabel, Dataset, DatasetDict, DatasetInfo, Features, IterableDataset, IterableDatasetDict
    from datasets.table import InMemoryTable

    if isinstance(ds, (IterableDataset, IterableDatasetDict)):
        raise PackError(
            "pack_dataset needs a materialised datasets.Dataset, not a streaming IterableDataset (blocks need every "
            "domain's whole token stream): pack a corpus on disk with `curricula pack` (`curricula corpus build --hf "
            "NAME` first), or materialise part of the stream, e.g. "
            "Dataset.from_generator(lambda: (yield from stream.take(n)), features=stream.features), and pass that "
            "to pack_dataset"
        )
    if isinstance(ds, DatasetDict):  # every split, with the same domains (named from the whole dict)
        names = domain_names
        if names is None and domain_column is not None:
            names = _dict_domain_names(ds, domain_column)
        packed = {}
        for split, part in ds.items():
            try:
                packed[split] = pack_dataset(part, tokenizer=tokenizer, block_size=block_size,
                                             text_column=text_column, domain_column=domain_column,
                                             input_ids_column=input_ids_column, domain_names=names,
                                             num_proc=num_proc, num_threads=num_threads)
            except PackError as e:  # say which split: the same message fits every split of the dict
                raise PackError(f"split {split!r}: {e}") from None
        return DatasetDict(packed)
    if not isinstance(ds, Dataset):
        raise PackError(f"pack_dataset needs a datasets.Dataset, got {type(ds).__name__}")
    if block_size is None:
        raise PackError("pack_dataset needs block_size= (tokens per block, e.g. 128 or 1024)")
    config = PackConfig(block_size=block_size, num_proc=num_proc, num_threads=num_threads)
    tok = None if tokenizer is None else _as_tokenizer(tokenizer)
    if tok is None and input_ids_column not in ds.column_names:
        hint = (f"it has a {text_column!r} column: pass tokenizer='gpt2' (or a tokenizer folder or object) to "
                "tokenize it" if text_column in ds.column_names else
                "pass tokenizer=... and text_column=NAME to tokenize a text column, or input_ids_column=NAME")
        raise PackError(f"the dataset has no {input_ids_column!r} column and no tokenizer was given "
                        f"(columns: {ds.column_names}); {hint}")
    if tok is not None and text_column not in ds.column_names and input_ids_column not in ds.column_names:
        raise PackError(f"the dataset has no {text_column!r} column to tokenize (columns: {ds.column_names}); pass "
                        f"text_column=NAME, or input_ids_column=NAME for rows that are already tokenized")
    if len(ds) == 0:
        raise PackError("the dataset is empty: there is nothing to pack")
    if ds._indices is not None:
        ds = ds.flatten_indices()
    dom, names = _domain_ids(ds, domain_column, domain_names)
    doc_ids = (ds.data.column("doc_id").cast(pa.string()).combine_chunks() if "doc_id" in ds.column_names
               else pa.array([str(i) for i in range(len(ds))], pa.string()))
    order = np.argsort(dom, kind="stable")  # group by domain, as `curricula pack` does
    if np.any(order != np.arange(len(order))):
        ds = ds.select(order).flatten_indices()
        dom, doc_ids = dom[order], doc_ids.take(pa.array(order))
    tokens = _token_table(ds, tok, text_column=text_column, input_ids_column=input_ids_column, dom=dom, names=names,
                          doc_ids=doc_ids, num_proc=num_proc, num_threads=num_threads)
    lengths = pc.list_value_length(tokens.column("input_ids")).to_numpy().astype(np.int64)
    total = int(lengths.sum())
    if total < block_size:
        raise PackError(f"the dataset has {total} tokens, fewer than one block of block_size={block_size}: the result "
                        "would be empty; pass more documents or a smaller block_size")
    layout = layout_blocks(tokens.column("domain_id").to_numpy(), lengths, names, config, "", where="the dataset")
    flat, docs = pc.list_flatten(tokens.column("input_ids")), tokens.column("doc_id")
    step = PackConfig.blocks_per_batch
    parts = [slice_blocks(flat, docs, np.arange(a, min(a + step, layout.n_blocks)), block_size, layout.block_start,
                          layout.block_domain, layout.doc_start) for a in range(0, layout.n_blocks, step)]
    table = pa.concat_tables(parts).combine_chunks()
    table = table.set_column(1, "domain_id", table.column("domain_id").cast(pa.int64()))
    features = Features.from_arrow_schema(table.schema)
    features["domain_id"] = ClassLabel(names=names)
    stats = {"block_size": block_size, "domain_names": names, **layout.stats()}
    if tok is not None and hasattr(tok, "identity"):
        stats["tokenizer"] = tok.identity.to_dict()
    info = DatasetInfo(features=features, description=json.dumps(stats, sort_keys=True))
    return Dataset(InMemoryTable(table), info=info)


def _dict_domain_names(dd, domain_column: str) -> list[str] | None:
    """The domain names of a ``DatasetDict``'s splits together (so every split numbers domains alike): a ClassLabel's
    names, else the sorted union of the text values; None for integer ids (``domain_names`` must name them)."""
    from datasets import ClassLabel

    first = next(iter(dd.values()))
    feature = first.features.get(domain_column) if domain_column in first.column_names else None
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    values = set()
    for part in dd.values():
        if domain_column not in part.column_names:
            return None
        col = part.data.column(domain_column)
        if pa.types.is_integer(col.type):
            return None
        values |= {str(v) for v in col.to_pylist() if v is not None}
    return sorted(values)


def domain_names_of(ds) -> list[str] | None:
    """The domain names a dataset carries in its ``domain_id`` ``ClassLabel`` (``pack_dataset`` output), or None."""
    from datasets import ClassLabel

    features = getattr(ds, "features", None)
    feature = features.get("domain_id") if features else None
    return list(feature.names) if isinstance(feature, ClassLabel) else None
