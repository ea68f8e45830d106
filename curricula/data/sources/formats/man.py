"""man(7) pages: rendered with groff (UTF-8, no hyphenation, one line per paragraph) and the output tidied."""

from __future__ import annotations

import os
import re
import subprocess

from curricula.data.sources.text import decode_bytes
from curricula.errors import CurriculaError


class ManRenderError(CurriculaError, RuntimeError):
    """groff could not render a man page; the message has its error output."""

__all__ = ["GROFF_CMD", "clean_man_output", "render_man_page"]

_BOX_RULE = re.compile(r"^[\s─━═│┃┼╪╫╬├┤┌┐└┘┬┴+|_-]*$")
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
    # tbl boxes and Tcl's .BS/.BE rules: drop pure rule lines (2000 columns wide at -rLL=2000n), keep cell separators
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
        raise ManRenderError(f"groff failed (exit {proc.returncode}): {decode_bytes(proc.stderr)[-400:]}")
    return clean_man_output(decode_bytes(proc.stdout))
