"""The ``many`` preset (``curricula corpus build --preset many``): its catalogue entries are well-formed, and the
pieces it added (npm packages, GNU Info, gzipped plain files, one language of an HTML manual, English man pages by
section) work on tiny synthetic layouts. Offline: nothing is downloaded (npm is faked with an injected runner)."""

from __future__ import annotations

import gzip
import io
import tarfile
from functools import partial
from pathlib import Path

import pytest

from curricula.data import build
from curricula.data.corpus import CorpusError
from curricula.data.fetch import downloaded_version, fetch_package, parse_spec, safe_name
from curricula.data.sources import (
    MANY_DOMAINS,
    MANY_SOURCES,
    PRESETS,
    SOURCES,
    extract,
    get_source,
    info_nodes,
    strip_html_comments,
)


def test_many_preset_is_well_formed():
    names = [s.name for s in SOURCES + MANY_SOURCES]
    assert len(names) == len(set(names)), "source names must be unique across presets (doc ids are source/...)"
    assert len(MANY_DOMAINS) >= 15 and set(MANY_DOMAINS) == {s.domain for s in MANY_SOURCES}
    assert not set(MANY_DOMAINS) & {s.domain for s in SOURCES}, "domain names must not collide with the default's"
    default_packages = {p for s in SOURCES for p in s.packages}
    for s in MANY_SOURCES:
        assert s.dataset == "en" and s.license and s.description
        assert not set(s.packages) & default_packages, f"{s.name} reuses a package of the default preset"
        for spec in s.packages:
            parse_spec(spec)  # raises on a malformed spec
        func = s.extract.func if isinstance(s.extract, partial) else s.extract
        assert callable(func) and getattr(extract, func.__name__) is func, f"{s.name}: extractor not in extract.py"
        assert get_source(s.name) is s


def test_preset_selection():
    assert set(PRESETS) == {"default", "many"}
    assert build.preset_sources("many") is MANY_SOURCES and build.preset_sources() is SOURCES
    assert build.select_sources(preset="many") == list(MANY_SOURCES)
    assert [s.name for s in build.select_sources(domains=["debian-manuals"], preset="many")] == [
        "debian-policy", "developers-reference", "debian-reference"]
    with pytest.raises(CorpusError, match="unknown preset"):
        build.preset_sources("few")
    with pytest.raises(CorpusError, match="unknown domain"):
        build.select_sources(domains=["prose"], preset="many")


def test_preset_refused_for_user_corpora(tmp_path):
    from curricula.cli import main

    assert main(["corpus", "build", "--preset", "many", "--source", "sample", "--out", str(tmp_path / "c")]) != 0
    assert not (tmp_path / "c").exists()


def test_npm_specs_and_fetch(tmp_path):
    assert parse_spec("npm:@types/node@20.11.30") == ("npm", "@types/node", "20.11.30")
    assert parse_spec("npm:left-pad@1.3.0") == ("npm", "left-pad", "1.3.0")
    assert safe_name("npm:@types/node@20.11.30") == "npm__types_node_20.11.30"
    for bad in ("npm:left-pad", "npm:@types/node", "npm:Left-Pad@1", "npm:@1.0"):
        with pytest.raises(ValueError):
            parse_spec(bad)
    calls = []

    def runner(cmd, cwd=None, **_):  # `npm pack` writes scope-name-version.tgz into cwd
        calls.append(cmd)
        data = b"/** Docs. */\ndeclare module 'fs' {}\n"
        with tarfile.open(Path(cwd) / "types-node-20.11.30.tgz", "w:gz") as tf:
            info = tarfile.TarInfo("node/fs.d.ts")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        return type("Proc", (), {"returncode": 0, "stdout": "", "stderr": ""})()

    root = fetch_package("npm:@types/node@20.11.30", tmp_path, runner=runner)
    assert calls == [["npm", "pack", "--silent", "@types/node@20.11.30"]]
    assert (root / "node/fs.d.ts").read_text().startswith("/** Docs.")
    assert fetch_package("npm:@types/node@20.11.30", tmp_path, runner=runner) == root and len(calls) == 1
    assert downloaded_version("npm:@types/node@20.11.30", tmp_path) == "20.11.30"
    docs = list(get_source("node-types").extract([root]))
    assert docs == [("fs", "/** Docs. */\ndeclare module 'fs' {}\n")]


def test_info_nodes_and_extract_info(tmp_path):
    info = ("This is standards.info, produced by makeinfo.\n\n\x1f\n"
            "File: standards.info,  Node: Top,  Next: Preface,  Up: (dir)\n\nGNU Coding Standards\n\n\x1f\n"
            "File: standards.info,  Node: Preface,  Prev: Top\n\n1 About the GNU Coding Standards\n*****\n\nText.\n"
            "\x1f\nTag Table:\nNode: Top\x7f100\n\x1f\nEnd Tag Table\n")
    assert info_nodes(info) == [("Top", "GNU Coding Standards"),
                                ("Preface", "1 About the GNU Coding Standards\n*****\n\nText.")]
    folder = tmp_path / "usr/share/info"
    folder.mkdir(parents=True)
    (folder / "standards.info.gz").write_bytes(gzip.compress(info.encode()))
    (folder / "maintain.info").write_text(info.replace("standards", "maintain"))
    ids = [i for i, _ in extract.extract_info([tmp_path], names=("standards", "maintain"))]
    assert ids == ["standards/0-top", "standards/1-preface", "maintain/0-top", "maintain/1-preface"]
    with pytest.raises(extract.ExtractError):
        list(extract.extract_info([tmp_path], names=("nope",)))


def test_plain_gz_transform_and_html_suffix(tmp_path):
    api = tmp_path / "usr/share/doc/nodejs/api"
    api.mkdir(parents=True)
    (api / "fs.md.gz").write_bytes(gzip.compress(b"# File system\n\n<!-- YAML\nadded: v0.1\n-->\nReads files.\n"))
    (api / "fs.html").write_text("<p>not markdown</p>")
    assert list(get_source("nodejs-docs").extract([tmp_path])) == [("fs", "# File system\n\n\nReads files.\n")]
    assert strip_html_comments("a<!-- x -->b<!--\ny\n-->c") == "abc"
    manual = tmp_path / "usr/share/doc/apache2-doc/manual/en"
    manual.mkdir(parents=True)
    page = '<div id="page-content"><div class="toplang">en | fr</div><h1>Binding</h1><p>Listen 80</p></div>'
    (manual / "bind.html").write_text(page)
    (manual / "bind.html.fr").write_text(page.replace("Listen", "Écouter"))
    assert list(get_source("apache-docs").extract([tmp_path])) == [("bind", "Binding\n\nListen 80")]
    ref = tmp_path / "usr/share/debian-reference"
    ref.mkdir(parents=True)
    (ref / "ch01.en.html").write_text("<div class='navheader'>Next</div><p>GNU/Linux tutorials</p>")
    (ref / "ch01.fr.html").write_text("<p>Didacticiels</p>")
    assert list(get_source("debian-reference").extract([tmp_path])) == [("ch01", "GNU/Linux tutorials")]


def test_english_man_pages_by_section(tmp_path, monkeypatch):
    man = tmp_path / "usr/share/man"
    for rel in ("man2/open.2.gz", "man3/printf.3.gz", "man7/signal.7.gz", "fr/man2/open.2.gz"):
        (man / rel).parent.mkdir(parents=True, exist_ok=True)
        (man / rel).write_bytes(gzip.compress(f".TH {rel}\n".encode()))
    (man / "man3/puts.3.gz").write_bytes(gzip.compress(b".so man3/printf.3\n"))  # a redirect: skipped
    monkeypatch.setattr(extract, "require_tool", lambda name: name)
    monkeypatch.setattr(extract, "render_man_page", lambda data: data.decode().strip())
    pages = list(extract.extract_man_pages([tmp_path], lang="", sections=("2", "3")))
    assert pages == [("man2/open.2", ".TH man2/open.2.gz"), ("man3/printf.3", ".TH man3/printf.3.gz")]
    every = [i for i, _ in extract.extract_man_pages([tmp_path], lang="")]
    assert every == ["man2/open.2", "man3/printf.3", "man7/signal.7"]  # not the French page
