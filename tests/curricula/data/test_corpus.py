"""Corpus inputs other than the packages: load_dataset names (a local stand-in for the Hub), local files, the CLI."""

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
