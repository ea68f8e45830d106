"""Malformed JSON Lines / JSON input to `curricula corpus build --files`: the error names the file and the line."""

import gzip
import json

import pytest

from curricula.cli import main
from curricula.data.corpus import CorpusError, file_documents

GOOD = json.dumps({"text": "a perfectly fine document"})


@pytest.mark.parametrize("gz", [False, True], ids=["jsonl", "jsonl.gz"])
def test_malformed_line_names_file_and_line(tmp_path, gz):
    body = "\n".join([GOOD, "", GOOD, '{"text": "no closing quote}', GOOD]) + "\n"
    f = tmp_path / ("docs.jsonl.gz" if gz else "docs.jsonl")
    f.write_bytes(gzip.compress(body.encode()) if gz else body.encode())
    with pytest.raises(CorpusError, match=rf"{f.name}:4: not valid JSON \(Unterminated string.*fix or delete that line"):
        file_documents([f"prose={f}"])


def test_line_that_is_not_an_object(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text(GOOD + '\n["text", "in a list"]\n')
    with pytest.raises(CorpusError, match=r"docs.jsonl:2: a JSON list, not an object"):
        file_documents([f"prose={f}"])


def test_json_array_file(tmp_path):
    f = tmp_path / "docs.json"
    f.write_text('[\n  {"text": "one document here"},\n  {"text": "two" "three"}\n]\n')
    with pytest.raises(CorpusError, match=r"docs.json:3: not valid JSON"):
        file_documents([f"prose={f}"])
    f.write_text('[{"text": "one document here"}, "not an object"]')
    with pytest.raises(CorpusError, match=r"docs.json: element 1 of the JSON array is str, not an object"):
        file_documents([f"prose={f}"])
    f.write_text('[{"text": "one document here"}, {"text": "another document"}]')
    assert file_documents([f"prose={f}"]).num_rows == 2


def test_fields_of_different_types_name_the_file(tmp_path):
    f = tmp_path / "docs.jsonl"
    f.write_text(GOOD + '\n{"text": {"nested": 1}}\n')
    with pytest.raises(CorpusError, match=r"docs.jsonl: its records do not have one type per field"):
        file_documents([f"prose={f}"])


def test_cli_reports_file_and_line_without_traceback(tmp_path, capsys):
    f = tmp_path / "docs.jsonl"
    f.write_text("\n".join([GOOD] * 5 + ["{oops}"] + [GOOD]) + "\n")
    assert main(["corpus", "build", "--files", f"prose={f}", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"curricula: error: {f}:6: not valid JSON") and "Traceback" not in err
