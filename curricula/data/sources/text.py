"""Text normalisation and splitting shared by every source: decoding, :func:`clean_text`, :func:`split_text`."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

__all__ = ["MIN_CHARS", "TARGET_CHARS", "clean_text", "decode_bytes", "read_text", "split_text"]

MIN_CHARS = 20        # shorter texts are dropped
TARGET_CHARS = 4000   # books and dictionaries are split into documents of about this size


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufeff\ufffe\uffff]")
_TRAILING_WS = re.compile(r"[ \t]+$", re.M)
_MANY_NEWLINES = re.compile(r"\n{3,}")


def decode_bytes(data: bytes) -> str:
    """UTF-8 (BOM dropped); fall back to cp1252 with replacement for legacy 8-bit files."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def read_text(path: Path) -> str:
    return decode_bytes(Path(path).read_bytes())


def clean_text(text: str) -> str:
    """Normalise newlines, NFC, drop control characters and trailing blanks, squeeze blank lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    text = _TRAILING_WS.sub("", text)
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip("\n")


def _pack(units: list[str], sep: str, limit: int) -> list[str]:
    out: list[str] = []
    cur = ""
    for u in units:
        if not cur:
            cur = u
        elif len(cur) + len(sep) + len(u) <= limit:
            cur = cur + sep + u
        else:
            out.append(cur)
            cur = u
    if cur:
        out.append(cur)
    return out


def _entries(paragraph: str) -> list[str]:
    """Split a paragraph into entries: a line starting in column 0 plus its indented lines."""
    out: list[list[str]] = []
    for line in paragraph.split("\n"):
        if not out or (line[:1] and not line[:1].isspace()):
            out.append([line])
        else:
            out[-1].append(line)
    return ["\n".join(e) for e in out]


def _split_unit(unit: str, limit: int, level: int) -> list[str]:
    """Split ``unit`` (longer than ``limit``) at the next finer boundary."""
    if level == 0:
        parts, sep = _entries(unit), "\n"
    elif level == 1:
        parts, sep = unit.split("\n"), "\n"
    elif level == 2:
        parts, sep = unit.split(" "), " "
    else:
        return [unit[i:i + limit] for i in range(0, len(unit), limit)]
    pieces: list[str] = []
    for p in parts:
        if len(p) > limit:
            pieces.extend(_split_unit(p, limit, level + 1))
        else:
            pieces.append(p)
    return _pack(pieces, sep, limit)


def split_text(text: str, target: int = TARGET_CHARS) -> list[str]:
    """Split at blank lines into documents of at most ``target`` characters.

    Paragraphs are packed greedily, indented paragraphs staying with the one before them when that fits
    (dictionary entries are not cut between headword and senses); a paragraph longer than ``target`` is split at entry starts
    (lines beginning in column 0, as in dictionaries without blank lines between entries), then at
    lines, then at spaces.
    """
    paragraphs = [p for p in re.split(r"\n[ \t]*\n", text) if p.strip()]
    # indented paragraphs belong to the block before them (a dictionary entry's senses, a speech's lines)
    blocks: list[list[str]] = []
    for p in paragraphs:
        if blocks and p[:1].isspace():
            blocks[-1].append(p)
        else:
            blocks.append([p])
    units: list[str] = []
    for block in blocks:
        joined = "\n\n".join(block)
        if len(joined) <= target:
            units.append(joined)
            continue
        for p in block:
            if len(p) > target:
                units.extend(_split_unit(p, target, 0))
            else:
                units.append(p)
    return [d.strip("\n") for d in _pack(units, "\n\n", target) if d.strip()]
