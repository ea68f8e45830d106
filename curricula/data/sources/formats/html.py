"""HTML to plain text with the standard library's ``html.parser`` (no third-party parser)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from html.parser import HTMLParser

from curricula.data.sources.text import clean_text

__all__ = ["SPHINX_SKIP", "html_to_text", "is_sphinx_main"]

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


def is_sphinx_main(tag: str, attrs: dict) -> bool:
    return tag == "main" or (tag == "div" and attrs.get("role") == "main")


SPHINX_SKIP = ("headerlink", "viewcode-link", "prev-next-area", "prev-next-bottom",
                "related", "sphinxsidebar", "bd-sidebar", "bd-toc", "footer")
