"""The language filter of `curricula corpus build`: an offline detector (py3langid, model inside the wheel)."""

import json
import socket
from pathlib import Path

import pytest

import curricula.data.sources as sources
from curricula.cli import main
from curricula.data.build import build_from_packages
from curricula.data.corpus import LANGUAGE_DROPPED, CorpusError, load_corpus, read_manifest, write_corpus
from curricula.data.language import LanguageFilter, LanguageFilterError, detect, is_other_language
from curricula.data.sources import Source

EN = [
    "The licensee may copy, modify and distribute the work, provided that the copyright notice and this permission "
    "notice appear in all copies of the software and its documentation.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of foolishness, "
    "it was the epoch of belief, it was the epoch of incredulity.",
    "To install the package, run the command below and then restart the server so that the new configuration is "
    "read when the service starts again.",
    "The committee met on Tuesday to discuss the budget for next year; most members agreed that spending on the "
    "library should be increased.",
]
DE = [
    "Jede Nutzung ist unter den Bedingungen dieser Lizenz zulässig. Die bereitgestellten Daten dürfen "
    "vervielfältigt, verbreitet und öffentlich zugänglich gemacht werden, sofern der Quellenvermerk erhalten bleibt.",
    "Das Programm liest die Konfigurationsdatei beim Start und schreibt alle Fehlermeldungen in die "
    "Protokolldatei, die im Verzeichnis des Benutzers angelegt wird.",
    "Am Dienstag traf sich der Ausschuss, um über den Haushalt des nächsten Jahres zu beraten; die meisten "
    "Mitglieder waren sich einig, dass die Bibliothek mehr Geld bekommen sollte.",
]
SHORT_EN = "Everybody gets free BORSCHT!"  # py3langid's top guess is Nigerian Pidgin, with English close behind
CODE = "func Lstat(path string, stat *Stat_t) (err error) {\n\treturn fstatat(AT_FDCWD, path, stat, 0)\n}\n" * 3


def docs(domain, source, texts, prefix=None):
    return [{"text": t, "domain": domain, "source": source, "doc_id": f"{prefix or source}/{i}"} for i, t in enumerate(texts)]


def test_detector_is_offline_and_ships_its_model(monkeypatch):
    import py3langid

    model = Path(py3langid.__file__).parent / "data" / "model.npz.xz"
    assert model.is_file() and model.stat().st_size > 1_000_000

    def no_network(*a, **kw):
        raise AssertionError("the language detector must not open a socket")

    monkeypatch.setattr(socket, "socket", no_network)
    assert detect(DE[0], "en")[0] == "de" and detect(EN[0], "en")[0] == "en"


def test_rule_drops_confident_other_languages_and_keeps_short_or_code_text():
    lf = LanguageFilter("en")
    keep, found = lf.keep_mask(EN + DE + [SHORT_EN, CODE])
    assert keep.tolist() == [True] * 4 + [False] * 3 + [True, True]
    assert [f[0] for f in found[4:7]] == ["de"] * 3 and all(f[2] < 1e-3 for f in found[4:7])
    short_lang, _, short_p = found[7]
    assert short_lang != "en" and short_p >= 1e-3  # another top guess, but English is still plausible: kept
    assert not is_other_language("zxx", 0.0, "en", 1e-3)  # no linguistic content is never a reason to drop
    # German corpus: the mirror image
    assert LanguageFilter("de").keep_mask(EN + DE)[0].tolist() == [False] * 4 + [True] * 3


def test_write_corpus_records_per_source_drops(tmp_path):
    table = docs("legal", "licences", EN[:2] + DE[:2]) + docs("prose", "books", EN[2:] + DE[2:])
    m = write_corpus(table, tmp_path / "c", val_fraction=0.0, language_filter=LanguageFilter("en"))
    lf = m["language_filter"]
    assert lf["language"] == "en" and lf["detector"].startswith("py3langid 0.4") and lf["threshold"] == 1e-3
    de_bytes = [len(t.encode()) for t in DE]
    assert lf["sources"]["licences"] == {"domain": "legal", "documents": 4, "bytes": sum(len(t.encode()) for t in EN[:2]) + sum(de_bytes[:2]),
                                         "documents_dropped": 2, "bytes_dropped": sum(de_bytes[:2]), "dropped_as": {"de": 2}}
    assert lf["sources"]["books"]["documents_dropped"] == 1 and lf["sources"]["books"]["bytes_dropped"] == de_bytes[2]
    assert lf["documents_dropped"] == 3 and lf["bytes_dropped"] == sum(de_bytes)
    assert read_manifest(tmp_path / "c")["language_filter"] == lf
    listed = [json.loads(line) for line in (tmp_path / "c" / LANGUAGE_DROPPED).read_text().splitlines()]
    assert [r["doc_id"] for r in listed] == ["licences/2", "licences/3", "books/2"]
    assert {r["detected"] for r in listed} == {"de"} and "text" not in listed[0]
    train = load_corpus(tmp_path / "c")["train"]
    assert sorted(train["text"]) == sorted(EN)
    # without the filter the manifest and folder carry no trace of it
    m = write_corpus(table, tmp_path / "c", val_fraction=0.0)
    assert "language_filter" not in m and not (tmp_path / "c" / LANGUAGE_DROPPED).exists()


def test_domain_that_is_all_another_language_is_an_error(tmp_path):
    table = docs("prose", "books", EN) + docs("legal", "dl-de", DE)
    with pytest.raises(CorpusError, match=r"domain 'legal' \(source\(s\) 'dl-de'\) has no documents left: 3 document\(s\) "
                                          r"are not in 'en' by the language filter.*--no-language-filter"):
        write_corpus(table, tmp_path / "c", language_filter=LanguageFilter("en"))


def test_parallel_detection_gives_the_same_answer():
    texts = (EN + DE + [SHORT_EN, CODE]) * 10
    assert LanguageFilter("en", jobs=2).detect(texts) == LanguageFilter("en").detect(texts)


def test_bad_language_or_threshold():
    with pytest.raises(LanguageFilterError, match=r"unknown language 'english'.*\ben\b"):
        LanguageFilter("english")
    with pytest.raises(LanguageFilterError, match=r"threshold 0 must be in \(0, 1\]"):
        LanguageFilter("en", threshold=0)


# ------------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def mixed_files(tmp_path):
    f = tmp_path / "mixed.jsonl"
    f.write_text("\n".join(json.dumps({"text": t}) for t in EN + DE) + "\n")
    return f


def test_cli_user_corpus_filter_is_off_unless_language_given(tmp_path, mixed_files, capsys):
    out = tmp_path / "off"
    assert main(["corpus", "build", "--files", f"prose={mixed_files}", "--out", str(out), "--val-fraction", "0"]) == 0
    assert "language_filter" not in read_manifest(out)
    assert read_manifest(out)["domains"]["prose"]["train_documents"] == 7
    out = tmp_path / "on"
    assert main(["corpus", "build", "--files", f"prose={mixed_files}", "--out", str(out), "--val-fraction", "0",
                 "--language", "en"]) == 0
    m = read_manifest(out)
    assert m["domains"]["prose"]["train_documents"] == 4
    assert m["language_filter"]["sources"]["mixed"]["documents_dropped"] == 3
    printed = capsys.readouterr().out
    assert "language filter: en" in printed and "de 3" in printed


@pytest.mark.parametrize("args, message", [
    (["--language-filter"], "needs the corpus' language: add --language LANG"),
    (["--no-language-filter", "--language", "en"], "--no-language-filter contradicts --language en"),
    (["--language", "xx"], "unknown language 'xx'"),
])
def test_cli_language_option_errors(tmp_path, mixed_files, capsys, args, message):
    assert main(["corpus", "build", "--files", f"prose={mixed_files}", "--out", str(tmp_path / "c"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_language_is_for_user_corpora_only(tmp_path, capsys):
    assert main(["corpus", "build", "--source", "sample", "--language", "en", "--out", str(tmp_path / "s")]) == 2
    assert "--language is for --files/--hf corpora" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ package corpus


def _toy(name, domain, dataset, texts):
    def extract(roots):
        yield from ((str(i), t) for i, t in enumerate(texts))
    return Source(name, domain, dataset, (), "public-domain", True, extract)


@pytest.fixture
def toy_catalogue(monkeypatch):
    toys = (
        _toy("toy-licences", "legal", "en", EN[:2] + DE[:1]),  # a German licence in the English corpus
        _toy("toy-books", "prose", "en", EN[2:]),
        _toy("toy-man-de", "german", "de", DE + EN[:1]),  # an English page among German ones
    )
    monkeypatch.setattr(sources, "SOURCES", toys)
    return toys


def test_package_corpus_filter_is_on_by_default(tmp_path, toy_catalogue):
    ms = build_from_packages(tmp_path / "out", cache_dir=tmp_path / "cache", val_fraction=0.0)
    en, de = ms["en"]["language_filter"], ms["de"]["language_filter"]
    assert en["language"] == "en" and de["language"] == "de"
    assert en["sources"]["toy-licences"]["documents_dropped"] == 1 and en["sources"]["toy-books"]["documents_dropped"] == 0
    assert de["sources"]["toy-man-de"]["documents_dropped"] == 1 and de["sources"]["toy-man-de"]["dropped_as"] == {"en": 1}
    assert ms["en"]["domains"]["legal"]["train_documents"] == 2 and ms["de"]["domains"]["german"]["train_documents"] == 3
    off = build_from_packages(tmp_path / "out", cache_dir=tmp_path / "cache", val_fraction=0.0, language_filter=False)
    assert "language_filter" not in off["en"] and off["en"]["domains"]["legal"]["train_documents"] == 3


def test_cli_package_corpus_no_language_filter(tmp_path, toy_catalogue):
    out = tmp_path / "out"
    assert main(["corpus", "build", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--datasets", "en"]) == 0
    assert read_manifest(out / "en")["language_filter"]["documents_dropped"] == 1
    assert main(["corpus", "build", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--datasets", "en",
                 "--no-language-filter"]) == 0
    assert "language_filter" not in read_manifest(out / "en")


def test_detections_are_cached_for_rebuilds(tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "en.json.gz"
    texts = EN + DE
    fresh = LanguageFilter("en").detect(texts)
    assert LanguageFilter("en", cache=cache).detect(texts) == fresh and cache.is_file()

    def no_detection(self, texts):
        assert not texts, "every text should come from the cache"
        return []

    monkeypatch.setattr(LanguageFilter, "_detect", no_detection)
    assert LanguageFilter("en", cache=cache).detect(texts) == fresh
    monkeypatch.undo()
    # another detector version (or language) does not trust the cache
    monkeypatch.setattr("curricula.data.language.detector_version", lambda: "py3langid 9.9")
    calls = []
    original = LanguageFilter._detect
    monkeypatch.setattr(LanguageFilter, "_detect", lambda self, t: calls.append(len(t)) or original(self, t))
    assert LanguageFilter("en", cache=cache).detect(texts) == fresh and calls == [len(texts)]
