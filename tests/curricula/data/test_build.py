"""`curricula corpus build`: domains or sources that end up with no documents are errors that name them."""

import json

import pytest

import curricula.data.sources as sources
from curricula.cli import main
from curricula.data.build import build_from_packages
from curricula.data.corpus import CorpusError, read_manifest, write_corpus
from curricula.data.sources import Source


def _docs(domain, source, texts):
    return [{"text": t, "domain": domain, "source": source, "doc_id": f"{source}/{i}"} for i, t in enumerate(texts)]


def test_domain_whose_documents_are_all_empty_is_an_error_naming_domain_and_source(tmp_path):
    good = _docs("prose", "books", [f"A perfectly fine document number {i}." for i in range(5)])
    blank = _docs("legal", "licences", ["", "   \n\t ", "\x00\x07\ufeff"])  # empty, whitespace, control characters only
    with pytest.raises(CorpusError, match=r"domain 'legal' \(source\(s\) 'licences'\) has no documents left: 3 document\(s\) have "
                                          r"empty text.*--text-column"):
        write_corpus(good + blank, tmp_path / "c")
    assert not (tmp_path / "c" / "corpus.json").exists()


def test_some_empty_documents_are_dropped_and_counted_per_source(tmp_path):
    docs = _docs("prose", "books", ["A fine document.", "  ", "Another fine one."]) + _docs("prose", "poems", ["Verse."])
    m = write_corpus(docs, tmp_path / "c", val_fraction=0.0)
    assert m["dropped_empty_documents"] == 1
    assert m["dropped_empty_by_source"] == {"books": {"documents": 1, "bytes": 2}}
    assert m["domains"]["prose"]["train_documents"] == 3
    # no drops: the manifest has no per-source entry (manifests stay as they were)
    assert "dropped_empty_by_source" not in write_corpus(docs[:1], tmp_path / "d", val_fraction=0.0)


def test_cli_files_domain_with_only_empty_documents(tmp_path, capsys):
    ok, bad = tmp_path / "ok.jsonl", tmp_path / "blank.jsonl"
    ok.write_text("\n".join(json.dumps({"text": f"text number {i} " * 5}) for i in range(10)))
    bad.write_text("\n".join(json.dumps({"text": " \n "}) for _ in range(4)))
    out = tmp_path / "c"
    assert main(["corpus", "build", "--files", f"prose={ok}", f"legal={bad}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "domain 'legal' (source(s) 'blank') has no documents left: 4 document(s) have empty text" in err
    assert "Traceback" not in err


def _toy(name, domain, texts):
    def extract(roots):
        yield from ((str(i), t) for i, t in enumerate(texts))
    return Source(name, domain, "en", (), "public-domain", True, extract)


@pytest.fixture
def toy_catalogue(monkeypatch):
    toys = (
        _toy("toy-books", "prose", ["A long enough text for a document, surely.", "And a second one, also long enough."]),
        _toy("toy-licences", "legal", ["short", "  tiny  ", "\x00\x01"]),  # all under 20 characters after cleaning
    )
    monkeypatch.setattr(sources, "SOURCES", toys)
    return toys


def test_package_domain_whose_documents_end_up_empty_after_cleaning(tmp_path, toy_catalogue):
    with pytest.raises(CorpusError, match=r"every source of domain 'legal' yielded no documents: 'toy-licences' "
                                          r"\(the domain has no documents at all\).*--force --sources toy-licences"):
        build_from_packages(tmp_path / "out", cache_dir=tmp_path / "cache", datasets=("en",))
    # the other domain alone builds
    m = build_from_packages(tmp_path / "out", cache_dir=tmp_path / "cache", datasets=("en",), domains=["prose"])
    assert set(m["en"]["domains"]) == {"prose"}
    assert set(read_manifest(tmp_path / "out" / "en")["domains"]) == {"prose"}


def test_package_source_without_documents_in_a_domain_that_has_others(tmp_path, monkeypatch):
    toys = (_toy("toy-books", "prose", ["A long enough text for a document, surely."]), _toy("toy-empty", "prose", []))
    monkeypatch.setattr(sources, "SOURCES", toys)
    with pytest.raises(CorpusError, match=r"some sources of domain 'prose' yielded no documents: 'toy-empty' "
                                          r"\(the domain would lose them\)"):
        build_from_packages(tmp_path / "out", cache_dir=tmp_path / "cache", datasets=("en",))
