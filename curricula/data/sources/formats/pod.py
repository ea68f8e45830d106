"""Perl POD to plain text: commands dropped, formatting codes (nested, ``C<< >>`` style) resolved."""

from __future__ import annotations

import html
import re

__all__ = ["pod_inline", "pod_to_text"]

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
