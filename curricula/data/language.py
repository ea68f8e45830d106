"""Language filter: drop documents that are not in the corpus' language, with an offline detector.

The detector is ``py3langid`` (BSD-3-Clause, a maintained fork of ``langid.py``): a naive Bayes classifier over byte
n-grams for 140 languages whose model (``py3langid/data/model.npz.xz``, 4.6 MB) ships inside the wheel; it needs
only numpy and never touches the network. It reads the whole document (no truncation), about 1.7 MB of text per
second per core (``jobs`` processes for more).

The rule (:func:`is_other_language`) drops a document only when the detector is sure it is another *natural*
language: its top language is neither the expected one nor ``zxx`` (no linguistic content: code, tables, lists of
names), and it gives the expected language a probability below ``threshold`` (default 0.001). Probabilities are
py3langid's normalised ones; on short texts they are flat, so a short English quote the detector reads as Pidgin or
Welsh keeps a probability for English far above 0.001 and stays; a German licence in the English corpus gets
~1e-30 and goes. The numbers on the real corpus are in ``docs/data.md``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from curricula.errors import CurriculaError
from curricula.run_layout import write_bytes

DETECTOR = "py3langid"
DEFAULT_THRESHOLD = 1e-3
NON_LINGUISTIC = frozenset({"zxx", "und"})  # "no linguistic content" / "undetermined": never a reason to drop


class LanguageFilterError(CurriculaError):
    """A language filter that cannot run (unknown language code, bad threshold, detector missing)."""


@lru_cache(maxsize=1)
def _identifier():
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError as err:  # pragma: no cover - a dependency
        raise LanguageFilterError(
            f"the language filter needs py3langid ({err}); install it with `pip install 'py3langid>=0.4,<0.5'` "
            "or build with --no-language-filter"
        ) from None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detector_version() -> str:
    from importlib.metadata import version

    return f"{DETECTOR} {version(DETECTOR)}"


def known_languages() -> list[str]:
    return list(_identifier().labels)


def detect(text: str, expected: str) -> tuple[str, float, float]:
    """``(top language, its probability, probability of expected)`` for one document."""
    ident = _identifier()
    lang, conf = ident.classify(text)
    if lang == expected:
        return lang, float(conf), float(conf)
    p = dict(ident.rank(text)).get(expected, 0.0)
    return lang, float(conf), float(p)


def is_other_language(detected: str, p_expected: float, expected: str, threshold: float) -> bool:
    """The drop rule: another natural language, and the expected one below ``threshold``."""
    return detected != expected and detected not in NON_LINGUISTIC and p_expected < threshold


def _detect_chunk(args: tuple[list[str], str]) -> list[tuple[str, float, float]]:
    texts, expected = args
    return [detect(t, expected) for t in texts]


@dataclass(frozen=True)
class LanguageFilter:
    """Keep the documents of ``language`` (ISO 639 code as py3langid names it: ``en``, ``de``, ...)."""

    language: str
    threshold: float = DEFAULT_THRESHOLD
    jobs: int = 1  # detector processes
    # a file of earlier detections (sha1 of the text -> result) for this language and detector version, so a re-run
    # of a build detects only new texts; None: no cache
    cache: Path | None = None

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise LanguageFilterError(f"language threshold {self.threshold} must be in (0, 1]; the default is "
                                      f"{DEFAULT_THRESHOLD}")
        known = known_languages()
        if self.language not in known or self.language in NON_LINGUISTIC:
            raise LanguageFilterError(
                f"unknown language {self.language!r} for {DETECTOR}; use an ISO 639 code it knows: "
                f"{', '.join(sorted(set(known) - NON_LINGUISTIC))}"
            )
        if self.jobs < 1:
            raise LanguageFilterError(f"jobs={self.jobs} must be >= 1")

    @property
    def rule(self) -> str:
        return (f"drop a document when {DETECTOR}'s top language is another natural language (not "
                f"{'/'.join(sorted(NON_LINGUISTIC))}) and it gives {self.language!r} a probability below "
                f"{self.threshold:g}")

    def detect(self, texts: Sequence[str]) -> list[tuple[str, float, float]]:
        """``(top language, its probability, probability of the expected language)`` per text, in order."""
        texts = ["" if t is None else t for t in texts]
        if self.cache is None:
            return self._detect(texts)
        keys = [hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest() for t in texts]
        known = self._read_cache()
        todo = sorted({k: i for i, k in enumerate(keys) if k not in known}.values())
        if todo:
            for i, r in zip(todo, self._detect([texts[i] for i in todo])):
                known[keys[i]] = r
            self._write_cache(known)
        return [tuple(known[k]) for k in keys]

    def _cache_header(self) -> dict:
        return {"detector": detector_version(), "language": self.language}

    def _read_cache(self) -> dict:
        if self.cache is None or not Path(self.cache).is_file():
            return {}
        try:
            with gzip.open(self.cache, "rt", encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError, EOFError):
            return {}  # a damaged cache is only a cache: detect again
        return data["results"] if data.get("header") == self._cache_header() else {}

    def _write_cache(self, results: dict) -> None:
        payload = json.dumps({"header": self._cache_header(), "results": results}, sort_keys=True).encode()
        write_bytes(self.cache, gzip.compress(payload, mtime=0))

    def _detect(self, texts: list[str]) -> list[tuple[str, float, float]]:
        if self.jobs == 1 or len(texts) < 64:
            return _detect_chunk((texts, self.language))
        from concurrent.futures import ProcessPoolExecutor

        # chunks balanced by bytes (document sizes vary by 1000x), in order
        sizes = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
        bounds = np.searchsorted(np.cumsum(sizes), np.linspace(0, sizes.sum(), 4 * self.jobs + 1)[1:-1])
        edges = [0, *sorted(set(int(b) + 1 for b in bounds if 0 <= b < len(texts) - 1)), len(texts)]
        chunks = [(texts[a:b], self.language) for a, b in zip(edges, edges[1:]) if b > a]
        with ProcessPoolExecutor(self.jobs) as ex:
            return [r for part in ex.map(_detect_chunk, chunks) for r in part]

    def keep_mask(self, texts: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
        found = self.detect(texts)
        keep = np.fromiter((not is_other_language(d, p, self.language, self.threshold) for d, _, p in found),
                           dtype=bool, count=len(found))
        return keep, found

    def describe(self) -> dict:
        return {"language": self.language, "detector": detector_version(), "threshold": self.threshold,
                "rule": self.rule}


def summarise(sources: Sequence[str], domains: Sequence[str], sizes: Sequence[int], keep: np.ndarray,
              found: Sequence[tuple[str, float, float]]) -> dict[str, dict]:
    """Per source: documents and bytes in, dropped, and the languages the dropped documents were detected as."""
    out: dict[str, dict] = {}
    for src, dom, size, k, (lang, _, _) in zip(sources, domains, sizes, keep, found):
        e = out.setdefault(src, {"domain": dom, "documents": 0, "bytes": 0, "documents_dropped": 0,
                                 "bytes_dropped": 0, "dropped_as": Counter()})
        e["documents"] += 1
        e["bytes"] += size
        if not k:
            e["documents_dropped"] += 1
            e["bytes_dropped"] += size
            e["dropped_as"][lang] += 1
    for e in out.values():
        e["dropped_as"] = dict(sorted(e["dropped_as"].items(), key=lambda kv: (-kv[1], kv[0])))
    return dict(sorted(out.items()))
