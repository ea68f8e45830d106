"""SWORD Bible modules: ``mod2imp`` output parsed into chapters, OSIS verse markup stripped."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

__all__ = ["osis_to_text", "parse_imp"]

_NOTE = re.compile(r"<note\b[^>]*?(?:/>|>.*?</note>)", re.S)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title>", re.S)
_TAG = re.compile(r"<[^>]+>")
_SPACE_BEFORE_PUNCT = re.compile(r" +([,.;:!?’”)\]])")


def osis_to_text(osis: str) -> str:
    """Strip OSIS markup of one verse: notes dropped, titles on their own line, tags removed."""
    s = _NOTE.sub(" ", osis)
    s = _TITLE.sub(lambda m: "\n" + m.group(1) + "\n", s)
    s = re.sub(r"<(?:lb|l|lg)\b[^>]*/>", "\n", s)
    s = re.sub(r'<div\b[^>]*type="(?:x-p|paragraph)"[^>]*/>', "\n", s)
    s = _TAG.sub("", s)
    s = html.unescape(s)
    lines = []
    for ln in s.split("\n"):
        ln = re.sub(r"[ \t]+", " ", ln).strip()
        ln = _SPACE_BEFORE_PUNCT.sub(r"\1", ln)
        lines.append(ln)
    return "\n".join(lines)


_IMP_KEY = re.compile(r"^(.+) (\d+):(\d+)$")


def parse_imp(imp: str) -> Iterator[tuple[str, int, str]]:
    """Parse ``mod2imp`` output into ``(book, chapter, text)``, one item per chapter in order.

    Records start with ``$$$Book C:V``; ``$$$[ ... Heading ]`` records are skipped. Verse texts
    are cleaned with :func:`osis_to_text` and joined; a chapter 0 holds a book's introduction.
    """
    cur_key: tuple[str, int] | None = None
    parts: list[str] = []

    def flush():
        if cur_key is None:
            return None
        body = " ".join(p for p in parts if p)
        body = re.sub(r" *\n *", "\n", body)
        body = re.sub(r"\n{2,}", "\n", body)
        body = re.sub(r"[ \t]{2,}", " ", body).strip()
        return (cur_key[0], cur_key[1], body) if body else None

    key: tuple[str, int] | None = None
    buf: list[str] = []
    records: list[tuple[tuple[str, int] | None, str]] = []
    for line in imp.split("\n"):
        if line.startswith("$$$"):
            if buf or key is not None:
                records.append((key, "\n".join(buf)))
            m = _IMP_KEY.match(line[3:].strip())
            key = (m.group(1), int(m.group(2))) if m else None
            buf = []
        else:
            buf.append(line)
    if buf or key is not None:
        records.append((key, "\n".join(buf)))

    for k, raw in records:
        if k is None:
            continue
        if k != cur_key:
            done = flush()
            if done:
                yield done
            cur_key, parts = k, []
        parts.append(osis_to_text(raw))
    done = flush()
    if done:
        yield done
