"""Small plain formats: YAML front matter (licensedcode), chit-chat conversations (JSON), fortune files."""

from __future__ import annotations

import re

__all__ = ["chitchat_to_text", "split_fortunes", "strip_front_matter"]


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
