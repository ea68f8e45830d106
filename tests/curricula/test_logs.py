"""The step log (``curricula/logs.py``): chunked Parquet rows that a resume cuts back to its step, reading only the
chunk that can reach past it."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from curricula.logs import StepLog


def write(log: StepLog, steps) -> None:
    for s in steps:
        log.append(s, np.array([float(s), -float(s)]))
    log.flush()


def test_a_resume_cuts_the_rows_after_its_step_and_appends_after_them(tmp_path):
    log = StepLog(["a", "b"], chunk_rows=4)
    log.open(tmp_path, 0)
    write(log, range(1, 15))  # chunks from steps 1, 5, 9, 13
    assert [p.name for p in log.chunks()] == [f"chunk-{s:012d}.parquet" for s in (1, 5, 9, 13)]
    again = StepLog(["a", "b"], chunk_rows=4)
    again.open(tmp_path, 6)  # a resume at step 6: rows 7.. belonged to the crashed timeline
    assert [p.name for p in again.chunks()] == [f"chunk-{s:012d}.parquet" for s in (1, 5)]
    write(again, range(7, 11))
    table = again.read()
    assert table.column("step").to_pylist() == list(range(1, 11))
    np.testing.assert_array_equal(table.column("b").to_numpy(), -np.arange(1, 11, dtype=float))


def test_a_resume_reads_only_the_last_chunk_it_keeps(tmp_path, monkeypatch):
    log = StepLog(["a", "b"], chunk_rows=4)
    log.open(tmp_path, 0)
    write(log, range(1, 41))
    read = []
    real = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda path, *a, **k: (read.append(path), real(path, *a, **k))[1])
    StepLog(["a", "b"], chunk_rows=4).open(tmp_path, 38)
    assert [Path(p).name for p in read] == ["chunk-000000000037.parquet"]
