"""The curriculum's part of checkpoints (``hf_trainer_ext/checkpoints.py``), through the trainer: resuming the newest
complete checkpoint, refusing missing, incomplete or corrupted ones with the fix, rotation that waits for the
curriculum state, the summary loss of a resumed run, a full disk named. Unit tests of ``CheckpointIO`` below."""

import errno
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

import hf_trainer_ext.checkpoints as checkpoints_mod
from curricula.errors import CheckpointError, CorruptFileError, DiskFullError
from curricula.methods.seam import EpochRecords
from curricula.run_layout import COMPLETE, write_json
from hf_trainer_ext.boundary import BackgroundWriter, ReportLog
from hf_trainer_ext.checkpoints import CheckpointIO
from hf_trainer_ext.recorder import BlockLossRecorder


def test_resume_latest_skips_an_incomplete_checkpoint_and_names_it(tmp_path, caplog, lfr):
    full, full_tap = lfr(tmp_path, tmp_path / "full")
    part, part_tap = lfr(tmp_path, tmp_path / "part", stop_at=9)
    (tmp_path / "part" / "checkpoint-9" / COMPLETE).unlink()  # as if the run died while saving checkpoint-9
    with caplog.at_level(logging.WARNING):
        rest, rest_tap = lfr(tmp_path, tmp_path / "part", resume="latest")
    assert "skipping" in caplog.text and "checkpoint-9: incomplete (missing COMPLETE" in caplog.text
    # resumed from checkpoint-6, so steps 7..9 run again: the stream from there equals the uninterrupted run's
    assert rest_tap.batches == full_tap.batches[2 * 6:]
    np.testing.assert_allclose(rest_tap.losses, full_tap.losses[2 * 6:], rtol=0, atol=1e-6)


def test_resume_refuses_missing_and_incomplete_checkpoints_with_the_fix(tmp_path, lfr):
    lfr(tmp_path, tmp_path / "run", stop_at=6)
    with pytest.raises(CheckpointError, match=r"checkpoint-99: no such folder; resume from .*checkpoint-6 \(the "
                                              r"newest complete one\) or with --resume_from_checkpoint latest"):
        lfr(tmp_path, tmp_path / "run", resume=str(tmp_path / "run" / "checkpoint-99"))
    (tmp_path / "run" / "checkpoint-6" / "curriculum" / "state.json").unlink()
    with pytest.raises(CheckpointError, match=r"checkpoint-6 is incomplete \(missing curriculum/state.json\).*resume "
                                              r"from .*checkpoint-3"):
        lfr(tmp_path, tmp_path / "run", resume=str(tmp_path / "run" / "checkpoint-6"))
    for c in ("checkpoint-3", "checkpoint-6"):
        (tmp_path / "run" / c / COMPLETE).unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match=r"has no complete checkpoint \(2 incomplete: checkpoint-3, checkpoint-6\)"):
        lfr(tmp_path, tmp_path / "run", resume=True)
    with pytest.raises(CheckpointError, match=r"has no complete checkpoint \(none at all\)"):
        lfr(tmp_path, tmp_path / "empty", resume="True")  # the command line's string form of True


def test_rotation_waits_for_the_curriculum_state(tmp_path, monkeypatch, lfr):
    """With save_total_limit=1, a crash while the new checkpoint's curriculum state is written leaves the old one."""
    import hf_trainer_ext.checkpoints as checkpoints_mod

    calls = []

    def dying_atomic_dir(target):
        calls.append(target)
        if len(calls) == 2:  # the second checkpoint's curriculum state
            raise KeyboardInterrupt("killed")
        return real(target)

    real = checkpoints_mod.atomic_dir
    monkeypatch.setattr(checkpoints_mod, "atomic_dir", dying_atomic_dir)
    with pytest.raises(KeyboardInterrupt):
        lfr(tmp_path, tmp_path / "run", save_total_limit=1)
    names = sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*"))
    assert names == ["checkpoint-3", "checkpoint-6"]
    assert (tmp_path / "run" / "checkpoint-3" / COMPLETE).is_file()  # still there: it was not rotated away
    assert not (tmp_path / "run" / "checkpoint-6" / COMPLETE).is_file()


def test_the_summary_loss_covers_the_whole_run_after_a_resume(tmp_path, lfr):
    full, _ = lfr(tmp_path, tmp_path / "full", logging_steps=1)
    lfr(tmp_path, tmp_path / "part", stop_at=9, logging_steps=1)
    rest, _ = lfr(tmp_path, tmp_path / "part", resume="latest", logging_steps=1)
    summary = [h for h in rest.state.log_history if "train_loss" in h][-1]["train_loss"]
    expected = [h for h in full.state.log_history if "train_loss" in h][-1]["train_loss"]
    assert summary == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("name, content, message", [
    ("state.json", b"\xff\xfe garbage", r"curriculum state .*state.json is corrupted"),
    ("events.json", b"[{", r"curriculum reports .*events.json is corrupted"),
    ("pending.parquet", b"not parquet", r"pending block losses .*pending.parquet cannot be read"),
    ("table.arrow", b"not arrow", r"index table .*table.arrow cannot be read"),
])
def test_a_corrupted_checkpoint_file_is_named(tmp_path, name, content, message, lfr):
    """The manifest names a changed file first; a checkpoint without one (written by an older version) is still
    refused by the reader that cannot use the file, which names it."""
    lfr(tmp_path, tmp_path / "run", stop_at=8, save_steps=8)
    ckpt = tmp_path / "run" / "checkpoint-8"
    (ckpt / "curriculum" / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"damaged: .*curriculum/{name} has .* bytes, .* when the checkpoint "
                                              r"was written"):
        lfr(tmp_path, tmp_path / "run", resume="latest", save_steps=8)
    marker = json.loads((ckpt / COMPLETE).read_text())
    (ckpt / COMPLETE).write_text(json.dumps({k: v for k, v in marker.items() if k not in ("files", "digest")}))
    with pytest.raises(CorruptFileError, match=message):
        lfr(tmp_path, tmp_path / "run", resume="latest", save_steps=8)


KINDS = ["curriculum/state.json", "curriculum/table.arrow", "curriculum/pending.parquet", "curriculum/events.json",
         "trainer_state.json", "rng_state.pth", "model.safetensors", "optimizer.pt", "scheduler.pt"]


@pytest.fixture(scope="module")
def stopped_at_6(tmp_path_factory, lfr):
    """The uninterrupted run's batches and losses, and a run stopped after step 6 (checkpoints 3 and 6)."""
    root = tmp_path_factory.mktemp("flip")
    _, full_tap = lfr(root, root / "full")
    lfr(root, root / "part", stop_at=6)
    return root, full_tap


@pytest.mark.parametrize("name", KINDS)
def test_flipped_bytes_in_any_checkpoint_file_are_refused_by_name_or_skipped_for_a_verified_one(tmp_path, name, caplog,
                                                                                                 lfr, stopped_at_6):
    import shutil

    root, full_tap = stopped_at_6
    shutil.copytree(root / "part", tmp_path / "part")
    damaged = tmp_path / "part" / "checkpoint-6" / name
    data = bytearray(damaged.read_bytes())
    for i in range(16):  # sixteen flipped bytes spread over the file, its size unchanged
        data[(i * 7919) % len(data)] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"checkpoint-6 is damaged: {name} has xxh3_128 [0-9a-f]{{32}}, "
                                              r"[0-9a-f]{32} when the checkpoint was written.*resume from .*checkpoint-3"):
        lfr(root, tmp_path / "part", resume=str(tmp_path / "part" / "checkpoint-6"))
    with caplog.at_level(logging.WARNING):
        rest, rest_tap = lfr(root, tmp_path / "part", resume="latest")
    assert f"skipping {tmp_path / 'part' / 'checkpoint-6'}: damaged: {name}" in caplog.text
    assert "resuming from" in caplog.text and "checkpoint-3" in caplog.text
    # resumed from checkpoint-3: the run from there is the uninterrupted one's
    assert rest_tap.batches == full_tap.batches[2 * 3:]
    np.testing.assert_allclose(rest_tap.losses, full_tap.losses[2 * 3:], rtol=0, atol=1e-6)


def test_manifest_verification_costs_little_next_to_the_save(tmp_path, lfr):
    """The marker lists every file with its size and digest; verifying them reads each once (xxh3, ~20 GB/s)."""
    import time

    from curricula.run_layout import checkpoint_problems

    lfr(tmp_path, tmp_path / "run", stop_at=3)
    ckpt = tmp_path / "run" / "checkpoint-3"
    marker = json.loads((ckpt / COMPLETE).read_text())
    on_disk = sorted(str(p.relative_to(ckpt)) for p in ckpt.rglob("*") if p.is_file() and p.name != COMPLETE)
    assert marker["digest"] == "xxh3_128" and sorted(marker["files"]) == on_disk
    t = time.process_time()
    assert checkpoint_problems(ckpt, curriculum=True) == []
    assert time.process_time() - t < 5.0  # generous: a few MB of files


def test_a_full_disk_names_the_path_and_the_free_space(tmp_path, monkeypatch, lfr):
    def full(*a, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(DiskFullError, match=r"no space left on the device while writing .*x.json \([\d,]+ MiB free on"):
        write_json(tmp_path / "x.json", {"a": 1})
    monkeypatch.undo()

    def torch_full(*a, **kw):  # what torch.save raises on a full disk
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 2048")

    monkeypatch.setattr(torch, "save", torch_full)
    with pytest.raises(DiskFullError, match=r"while writing .*checkpoint-3 .*lower save_total_limit"):
        lfr(tmp_path, tmp_path / "run")


# ---- CheckpointIO on its own -----------------------------------------------------------------------------------------


def _io(tmp_path, curriculum, recorder, single_process, should_save=True):
    """The trainer's CheckpointIO for a run in tmp_path/run whose record says run id r1."""
    args = SimpleNamespace(should_save=should_save, output_dir=str(tmp_path / "run"))
    return CheckpointIO(curriculum, recorder, single_process(), args, ReportLog(None), BackgroundWriter(), lambda: "r1")


def _records(rec: BlockLossRecorder, block_ids, step: int) -> None:
    ids = torch.as_tensor(block_ids)
    rec.add(ids, (ids >= 16).long(), ids.float() / 10, step)  # block b's loss: b / 10


def _lfr_in_focus(tiny_lfr):
    """The tiny LFR run after its learn epoch: block b had loss b / 10, so the focus keeps the hard blocks 16..31."""
    cur = tiny_lfr()
    cur.start_epoch(0)
    cur.end_epoch(EpochRecords(block_id=np.arange(32), domain_id=np.repeat([0, 1], 16), step=np.repeat([1, 2, 3, 4], 8),
                               loss=np.arange(32, dtype=np.float32) / 10))
    cur.start_epoch(1)
    return cur


def test_save_writes_state_events_and_pending_records_atomically(tmp_path, monkeypatch, single_process, tiny_lfr):
    cur = _lfr_in_focus(tiny_lfr)
    rec = BlockLossRecorder(2)
    _records(rec, [30, 17, 21, -1], step=5)  # the focus epoch's first step so far (-1: a pad slot, not recorded)
    io = _io(tmp_path, cur, rec, single_process)
    io.reports.events = [{"epoch": 1, "n_kept": 16}]
    written = []
    real = checkpoints_mod.atomic_dir
    monkeypatch.setattr(checkpoints_mod, "atomic_dir", lambda target: written.append(Path(target)) or real(target))
    ckpt = tmp_path / "run" / "checkpoint-5"
    io.save(ckpt, 5)
    io.save(ckpt, 5)  # again for the same checkpoint (its push, then the save): written once
    saved = ckpt / "curriculum"
    assert written == [saved]  # one folder, written aside and renamed into place
    assert {"state.json", "events.json", "pending.parquet", "table.arrow"} <= {p.name for p in saved.iterdir()}
    assert [p.name for p in ckpt.iterdir()] == ["curriculum"]  # no temporary left beside it
    state = json.loads((saved / "state.json").read_text())
    assert state["step"] == 5 and state["state"]["epoch"] == 1
    assert json.loads((saved / "events.json").read_text()) == [{"epoch": 1, "n_kept": 16}]
    pending = pq.read_table(saved / "pending.parquet").to_pydict()
    assert pending["block_id"] == [17, 21, 30] and pending["step"] == [5, 5, 5]  # sorted by (step, block)
    np.testing.assert_allclose(pending["loss"], [1.7, 2.1, 3.0], rtol=1e-6)
    assert _io(tmp_path, None, None, single_process).save(tmp_path / "run" / "checkpoint-6", 6) is None
    assert not (tmp_path / "run" / "checkpoint-6").exists()  # no curriculum: nothing of ours in the checkpoint


def test_mark_complete_writes_the_marker_with_the_loss_sum_of_the_whole_run(tmp_path, single_process):
    io = _io(tmp_path, None, None, single_process)
    for step in (4, 6):
        (tmp_path / "run" / f"checkpoint-{step}").mkdir(parents=True)
    io.mark_complete(tmp_path / "run" / "checkpoint-4", 4, loss_sum_this_call=10.0)
    marker = json.loads((tmp_path / "run" / "checkpoint-4" / COMPLETE).read_text())
    assert (marker["step"], marker["run_id"], marker["loss_sum"]) == (4, "r1", 10.0)
    io.resumed_marker = marker  # this train() call resumed from checkpoint-4
    io.mark_complete(tmp_path / "run" / "checkpoint-6", 6, loss_sum_this_call=5.0)  # steps 5 and 6
    marker = json.loads((tmp_path / "run" / "checkpoint-6" / COMPLETE).read_text())
    assert (marker["step"], marker["run_id"], marker["loss_sum"]) == (6, "r1", 15.0)
    (tmp_path / "run" / "checkpoint-8").mkdir()
    other = _io(tmp_path, None, None, single_process, should_save=False)
    other.mark_complete(tmp_path / "run" / "checkpoint-8", 8, 1.0)
    assert not (tmp_path / "run" / "checkpoint-8" / COMPLETE).exists()  # only the main process writes


def test_restore_loads_the_checkpoint_and_deletes_later_epoch_logs(tmp_path, single_process, tiny_lfr):
    cur = _lfr_in_focus(tiny_lfr)
    rec = BlockLossRecorder(2)
    _records(rec, [30, 17], step=5)
    io = _io(tmp_path, cur, rec, single_process)
    io.reports.events = [{"epoch": 1, "n_kept": 16}]
    ckpt = tmp_path / "run" / "checkpoint-5"
    io.save(ckpt, 5)
    io.mark_complete(ckpt, 5, 12.5)
    log = tmp_path / "run" / "curriculum"
    log.mkdir()
    for name in ("epoch-000-learn", "epoch-001-focus", "epoch-002-focus"):  # the crashed timeline got further
        (log / f"{name}.parquet").write_bytes(b"x")

    fresh, fresh_rec = tiny_lfr(), BlockLossRecorder(2)
    _records(fresh_rec, [3], step=9)  # anything recorded before the restore is dropped
    restored = _io(tmp_path, fresh, fresh_rec, single_process)
    restored.restore(ckpt, process_index=0)
    assert fresh.epoch == 1 and np.array_equal(fresh.table.eligible_ids(), np.arange(16, 32))
    np.testing.assert_array_equal(fresh.table.loss, cur.table.loss)
    assert restored.reports.events == [{"epoch": 1, "n_kept": 16}]
    marker = restored.resumed_marker  # the checkpoint's COMPLETE
    assert (marker["step"], marker["run_id"], marker["loss_sum"]) == (5, "r1", 12.5)
    assert fresh_rec.gather(None)["block_id"].tolist() == [17, 30]  # the epoch's records so far, sorted
    assert sorted(p.name for p in log.iterdir()) == ["epoch-000-learn.parquet", "epoch-001-focus.parquet"]

    other_rec = BlockLossRecorder(2)  # another process: the pending records are loaded on process 0 only
    _io(tmp_path, tiny_lfr(), other_rec, single_process, should_save=False).restore(ckpt, process_index=1)
    assert other_rec.gather(None)["block_id"].size == 0


def test_whole_run_loss_adds_the_steps_before_the_resume(tmp_path, single_process):
    io = _io(tmp_path, None, None, single_process)
    assert io.whole_run_loss(2.0, 10) == 2.0  # not resumed: Trainer's own mean over every step
    io.resumed_marker = {"step": 4, "loss_sum": 12.0}  # steps 1-4 summed to 12
    assert io.whole_run_loss(1.5, 10) == pytest.approx((12.0 + 1.5 * 6) / 10)  # steps 5-10 averaged 1.5
    assert io.whole_run_loss(1.5, 0) == 1.5
