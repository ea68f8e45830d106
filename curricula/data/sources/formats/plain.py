"""Small plain formats: YAML front matter (licensedcode), chit-chat conversations (JSON), fortune files, GNU Info
manuals, HTML comments in Markdown."""

from __future__ import annotations

import re

__all__ = ["chitchat_to_text", "info_nodes", "split_fortunes", "strip_front_matter", "strip_html_comments"]


def strip_front_matter(text: str) -> str:
    """Remove a leading ``---`` ... ``---`` YAML block (licensedcode ``*.LICENSE`` files)."""
    t = text.lstrip("\ufeff")
    if not t.startswith("---"):
        return text
    m = re.match(r"---[ \t]*\n.*?\n---[ \t]*(?:\n|$)", t, re.S)
    return t[m.end():] if m else text


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


def split_fortunes(text: str) -> list[str]:
    """Split a fortune file on lines consisting of ``%``."""
    text = text.replace("\r\n", "\n")
    return [p.strip("\n") for p in re.split(r"(?m)^%[ \t]*$", text) if p.strip()]


def info_nodes(text: str) -> list[tuple[str, str]]:
    """A GNU Info file as ``(node name, text)`` per node, in order.

    Nodes are separated by ``\\x1f`` (unit separator) lines; each starts with a header line
    (``File: x.info,  Node: NAME,  Next: ...``), which is dropped. The preamble before the first node, the
    ``Tag Table`` and the ``Indirect`` table (byte offsets, not text) and ``Local Variables`` blocks are skipped."""
    out = []
    for chunk in text.split("\x1f"):
        chunk = chunk.lstrip("\n")
        m = re.match(r"File: [^,\n]*,\s*Node: ([^,\n]*)[^\n]*\n", chunk)
        if not m:
            continue  # the preamble, Tag Table, Indirect, End Tag Table, Local Variables
        out.append((m.group(1).strip(), chunk[m.end():].strip("\n")))
    return out


def strip_html_comments(text: str) -> str:
    """Drop ``<!-- ... -->`` comments (Markdown sources keep metadata and lint directives in them)."""
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)
