"""reST / MyST sources (Sphinx ``_sources``): markup is kept, ``.. raw::`` blocks are dropped."""

from __future__ import annotations

import re

__all__ = ["clean_rest", "rest_body_chars"]

_RAW_DIRECTIVE = re.compile(r"^(\s*)\.\. raw::")


def clean_rest(text: str) -> str:
    """Drop ``.. raw::`` blocks (inline HTML / LaTeX); other reST markup stays."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        m = _RAW_DIRECTIVE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        indent = len(m.group(1))
        i += 1
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            i += 1
    return "\n".join(out)


def rest_body_chars(text: str) -> int:
    """Characters outside directive lines and their options: tells autosummary stubs apart."""
    n = 0
    for line in text.split("\n"):
        s = line.strip()
        if not s or s.startswith("..") or s.startswith(":") or set(s) <= set("=-~^*#+`'\"_"):
            continue
        n += len(s)
    return n
