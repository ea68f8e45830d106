"""The run folder's files (``curricula/run_layout.py``): readers that name the file and line on failure. (A full disk
while writing is tested through a checkpoint save in tests/hf_trainer_ext/test_checkpoints.py.)"""

import pytest

from curricula.errors import CorruptFileError
from curricula.run_layout import read_jsonl


def test_a_malformed_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": 2\n{"a": 3}\n')
    with pytest.raises(CorruptFileError, match=r"r.jsonl:2: not valid JSON"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n{"a": 2')  # a torn last line (a crash during an append) is dropped
    assert read_jsonl(path) == [{"a": 1}]
