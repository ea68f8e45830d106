"""A corpus on disk (``curricula/data/corpus.py``) from inputs other than the packages: load_dataset names (a local
stand-in for the Hub), local files, the CLI; bad input: no documents, empty domains, invalid UTF-8, missing columns.
Malformed JSON Lines input is tested in test_corpus_jsonl.py."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curricula.cli import main
from curricula.data.corpus import CorpusError, file_documents, hub_documents, load_corpus, read_manifest, write_corpus


@pytest.fixture
def pile_like(tmp_path):
    """A folder laid out like a Hub dataset repo with the Pile's nested `meta.pile_set_name` domain column."""
    root = tmp_path / "the_pile_standin"
    (root / "data").mkdir(parents=True)
    rows = [
        {"text": f"document {i} about {'law' if i % 3 == 0 else 'code' if i % 3 == 1 else 'the web'} " * 20,
         "meta": {"pile_set_name": ["FreeLaw", "Github", "Pile-CC"][i % 3]}}
        for i in range(60)
    ]
    pq.write_table(pa.Table.from_pylist(rows), root / "data" / "train-00000-of-00001.parquet")
    return root


def test_load_dataset_name_with_nested_domain_column(pile_like, tmp_path):
    table = hub_documents(str(pile_like), split="train", domain_column="meta.pile_set_name")
    assert table.num_rows == 60
    assert sorted(set(table.column("domain").to_pylist())) == ["FreeLaw", "Github", "Pile-CC"]
    assert table.column("doc_id")[0].as_py() == "the_pile_standin/0"
    m = write_corpus(table, tmp_path / "c")
    assert {d: e["train_documents"] + e["validation_documents"] for d, e in m["domains"].items()} == {
        "FreeLaw": 20, "Github": 20, "Pile-CC": 20}


def test_load_dataset_one_domain_per_source(pile_like):
    table = hub_documents(str(pile_like), domain="web", limit=10)
    assert set(table.column("domain").to_pylist()) == {"web"} and table.num_rows == 10


def test_local_files_domain_prefix_and_formats(tmp_path):
    (tmp_path / "prose").mkdir()
    (tmp_path / "prose" / "a.txt").write_text("A whole text file is one document.")
    (tmp_path / "prose" / "b.txt").write_text("Another document, in another file.")
    (tmp_path / "code.jsonl").write_text("\n".join(json.dumps({"text": f"func f{i}() {{}}", "id": i}) for i in range(5)))
    table = file_documents([f"prose={tmp_path / 'prose'}", f"code={tmp_path / 'code.jsonl'}"], doc_id_column=None)
    doms = table.column("domain").to_pylist()
    assert doms.count("prose") == 2 and doms.count("code") == 5
    assert len(set(table.column("doc_id").to_pylist())) == 7


def test_cli_build_from_files_and_info(tmp_path, capsys):
    f = tmp_path / "docs.jsonl"
    f.write_text("\n".join(json.dumps({"text": f"text number {i} " * 30, "kind": "a" if i % 2 else "b"}) for i in range(40)))
    out = tmp_path / "corpus"
    assert main(["corpus", "build", "--files", str(f), "--domain-column", "kind", "--out", str(out)]) == 0
    assert set(read_manifest(out)["domains"]) == {"a", "b"}
    assert len(load_corpus(out)["validation"]) == 2
    assert main(["corpus", "info", str(out)]) == 0
    assert "total" in capsys.readouterr().out


def test_cli_reports_user_errors_cleanly(tmp_path, capsys):
    f = tmp_path / "docs.jsonl"
    f.write_text('{"body": "x"}\n')
    assert main(["corpus", "build", "--files", str(f), "--domain", "x", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("curricula: error:") and "--text-column" in err and "Traceback" not in err
    assert main(["pack", str(tmp_path / "nope"), "--out", str(tmp_path / "p")]) == 2
    assert "curricula corpus build" in capsys.readouterr().err


def test_duplicate_doc_ids_rejected(tmp_path):
    docs = [{"text": "same id", "domain": "a", "source": "s", "doc_id": "x"}] * 2
    with pytest.raises(CorpusError, match="doc_id 'x' occurs more than once"):
        write_corpus(docs, tmp_path / "c")


# ---- bad input ----------------------------------------------------------------------------------------------------


def test_empty_dataset(tmp_path):
    with pytest.raises(CorpusError, match="no documents"):
        write_corpus([], tmp_path / "c")


def test_domain_with_no_documents(tmp_path, synthetic_docs):
    with pytest.raises(CorpusError, match=r"domain\(s\) \['legal'\] have no documents.*drop them"):
        write_corpus(synthetic_docs(domains=("prose",)), tmp_path / "c", domains=["prose", "legal"])


def test_domain_with_only_blank_documents(tmp_path, synthetic_docs):
    docs = synthetic_docs(domains=("prose",)) + [{"text": "   ", "domain": "legal", "source": "x", "doc_id": "l/0"}]
    with pytest.raises(CorpusError, match="legal"):
        write_corpus(docs, tmp_path / "c", domains=["prose", "legal"])


def test_non_utf8_file_names_file_and_offset(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_bytes("Grüße aus Köln\n".encode("utf-8") + "Gr\xfc\xdfe".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"bad.txt: invalid UTF-8 at byte 20 .*iconv.*--encoding-errors replace"):
        file_documents([f"prose={f}"])
    table = file_documents([f"prose={f}"], encoding_errors="replace")
    assert "\ufffd" in table.column("text")[0].as_py()


def test_missing_text_column(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text('{"body": "some text here", "domain": "prose"}\n')
    with pytest.raises(CorpusError, match=r"no 'text' column \(columns: \['body', 'domain'\]\); pass --text-column"):
        file_documents([str(f)])
    assert file_documents([str(f)], text_column="body").column("text")[0].as_py() == "some text here"


def test_missing_domain_is_explained(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text('{"text": "some text here"}\n')
    with pytest.raises(CorpusError, match="--domain NAME"):
        file_documents([str(f)])
