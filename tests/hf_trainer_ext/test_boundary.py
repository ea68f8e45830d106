"""The epoch boundary (``hf_trainer_ext/boundary.py``), through the trainer: one line per decision in the reports file
however often the run resumed. Unit tests of ``ReportLog``, ``BackgroundWriter`` and ``PhaseBoundary`` below."""

import logging
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from curricula.logs import read_curriculum_log
from curricula.methods.seam import Report
from curricula.run_layout import read_jsonl
from hf_trainer_ext.boundary import BackgroundWriter, PhaseBoundary, ReportLog
from hf_trainer_ext.recorder import BlockLossRecorder


def test_focus_reports_have_one_line_per_decision_after_resumes(tmp_path, lfr):
    full, _ = lfr(tmp_path, tmp_path / "run")
    decisions = read_jsonl(tmp_path / "run" / "curriculum" / "focus_reports.jsonl")
    assert [d["epoch"] for d in decisions] == [1]
    for ckpt in ("checkpoint-3", "checkpoint-6", "checkpoint-9"):  # re-run the boundary from before and after it
        lfr(tmp_path, tmp_path / "run", resume=str(tmp_path / "run" / ckpt))
        assert read_jsonl(tmp_path / "run" / "curriculum" / "focus_reports.jsonl") == decisions


# ---- the boundary's parts on their own -------------------------------------------------------------------------------


def test_report_log_rewrites_the_reports_file_one_line_per_event(tmp_path, caplog):
    path = tmp_path / "curriculum" / "reports.jsonl"
    log = ReportLog(path)
    assert log.handle(None) == {}
    with caplog.at_level(logging.WARNING, logger="hf_trainer_ext.boundary"):
        metrics = log.handle(Report(metrics={"m": 1.0}, event={"epoch": 1}, warnings=["domain 'easy' emptied"]))
    assert metrics == {"m": 1.0} and "domain 'easy' emptied" in caplog.text
    assert log.handle(Report(metrics={"m": 2.0})) == {"m": 2.0}  # no event: no line
    log.handle(Report(event={"epoch": 3}))
    assert read_jsonl(path) == [{"epoch": 1}, {"epoch": 3}]
    resumed = ReportLog(path)  # a resume restores the checkpoint's events (here: before epoch 3's decision)
    resumed.events = [{"epoch": 1}]
    resumed.handle(Report(event={"epoch": 3}))
    assert read_jsonl(path) == [{"epoch": 1}, {"epoch": 3}]  # rewritten whole: no decision twice
    silent = ReportLog(None)  # a process that does not write keeps the events all the same
    silent.handle(Report(event={"epoch": 1}))
    assert silent.events == [{"epoch": 1}]


def test_background_writer_runs_one_write_at_a_time_and_reraises_on_join():
    writer = BackgroundWriter()
    writer.join()  # nothing started: nothing to wait for
    done = []

    def slow(x):
        time.sleep(0.2)
        done.append(x)

    writer.start(slow, 1)
    writer.start(done.append, 2)  # waits for the write before it
    writer.join()
    assert done == [1, 2]

    def broken():
        raise OSError("disk on fire")

    writer.start(broken)
    with pytest.raises(OSError, match="disk on fire"):
        writer.join()
    writer.join()  # raised once
    writer.start(broken)
    with pytest.raises(OSError, match="disk on fire"):
        writer.start(done.append, 3)  # the next write joins the failed one first
    assert done == [1, 2]


def test_phase_boundary_writes_the_epoch_log_and_decides_the_next_epoch(tmp_path, caplog, single_process, tiny_lfr):
    cur = tiny_lfr()  # 32 blocks, 8 per step: learn (4 steps), then focus dropping 50 %
    cur.start_epoch(0)
    rec = BlockLossRecorder(2)
    loss = np.arange(32, dtype=np.float32) / 10  # block b: b / 10 (the easy domain, blocks 0..15, lowest)
    order = np.random.default_rng(0).permutation(32)
    for step, ids in enumerate(order.reshape(4, 8), start=1):
        rec.add(torch.as_tensor(ids), torch.as_tensor(ids // 16), torch.as_tensor(loss[ids]), step)
    checked = []
    args = SimpleNamespace(output_dir=str(tmp_path / "run"), should_save=True)
    reports, writer = ReportLog(tmp_path / "run" / "curriculum" / cur.reports_file), BackgroundWriter()
    boundary = PhaseBoundary(cur, rec, single_process(), args, lambda *a: checked.append(a), reports, writer)
    with caplog.at_level(logging.WARNING, logger="hf_trainer_ext.boundary"):
        metrics = boundary.run()
    writer.join()

    log = read_curriculum_log(tmp_path / "run").to_pandas()  # the learn epoch's log: every block once
    assert sorted(log.block_id) == list(range(32)) and set(log.epoch) == {0} and set(log.phase) == {"learn"}
    np.testing.assert_allclose(log.sort_values("block_id").loss, loss)
    assert [p.name for p in (tmp_path / "run" / "curriculum").glob("epoch-*")] == ["epoch-000-learn.parquet"]
    assert checked == [("epoch 0", 32, 0, pytest.approx(float(loss.mean())))]  # the divergence check's numbers
    # the next epoch's decision: the focus keeps the 16 highest losses, i.e. the hard domain
    assert cur.epoch == 1 and np.array_equal(cur.table.eligible_ids(), np.arange(16, 32))
    assert metrics["curriculum/next_blocks"] == 16 and metrics["curriculum/blocks_trained"] == 32
    assert metrics["curriculum/kept_share/easy"] == 0.0 and "drops every block of domain 'easy'" in caplog.text
    (event,) = read_jsonl(tmp_path / "run" / "curriculum" / "focus_reports.jsonl")
    assert event["epoch"] == 1 and event["n_kept"] == 16 and event["n_dropped"] == 16
    assert (tmp_path / "run" / "curriculum" / "table.arrow").is_file()  # written in the background
    assert rec.gather(None)["block_id"].size == 0  # the epoch's records were handed over
