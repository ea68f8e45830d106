"""The curriculum's part of a checkpoint, and the completeness marker written last.

``checkpoint-N/curriculum/`` holds the curriculum state at step N (``Curriculum.save``: JSON + numpy, never pickle),
its decisions so far (``events.json``) and the current epoch's block losses recorded so far (``pending.parquet``).
It is written (atomically, by the main process) after Trainer's own files and before Trainer rotates older
checkpoints away; ``COMPLETE`` comes last, so a checkpoint without it is one the run was writing when it stopped.
The marker also holds the training loss summed over every step so far, so a resumed run's summary covers the whole
run.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from transformers.trainer_utils import rotate_checkpoints

from curricula.logs import LOG_DIR, sort_records
from curricula.methods.seam import Curriculum
from curricula.run_layout import (COMPLETE, DIGEST, atomic_dir, digest_files, read_json, read_table, write_json,
                                  write_parquet)
from hf_trainer_ext.boundary import BackgroundWriter, ReportLog

CKPT_DIR = "curriculum"
PENDING = "pending.parquet"
EVENTS = "events.json"


class CheckpointIO:
    """Writes and restores the curriculum's part of checkpoints for one trainer (``save``, ``mark_complete`` and
    ``restore`` are collective where they gather; the main process writes)."""

    def __init__(self, curriculum: Curriculum | None, recorder, accelerator, args, reports: ReportLog,
                 writer: BackgroundWriter, run_id, stream=None, probe=None):
        self.curriculum, self.recorder, self.accelerator = curriculum, recorder, accelerator
        self.should_save, self.output_dir = args.should_save, Path(args.output_dir)
        self.reports, self.writer, self.run_id = reports, writer, run_id
        self.stream = stream  # streamed training data: its position is part of the checkpoint
        self.probe = probe  # held-out measurements (eval_stats): the blocks they scored count toward the run's compute
        self.resumed_marker: dict | None = None  # the marker of the checkpoint this train() resumed from
        self._written_for: str | None = None

    def save(self, checkpoint: str | Path, step: int) -> None:
        """The curriculum state at ``step`` and the epoch's records so far, into ``checkpoint/curriculum``."""
        cur = self.curriculum
        if cur is None or self._written_for == os.path.normpath(checkpoint):
            return  # no curriculum, or written just before this checkpoint's push
        self.writer.join()
        cur.flush_logs()
        records = self.recorder.gather(self.accelerator) if "block_records" in cur.needs else None
        if self.should_save:
            with atomic_dir(Path(checkpoint) / CKPT_DIR) as tmp:
                cur.save(tmp, step)
                if self.stream is not None:
                    self.stream.save(tmp, step)
                write_json(tmp / EVENTS, self.reports.events)
                if records is not None:
                    write_parquet(tmp / PENDING, _records_arrow(sort_records(**records)))
        self._written_for = os.path.normpath(checkpoint)

    def mark_complete(self, checkpoint: str | Path, step: int, loss_sum_this_call: float) -> None:
        """The marker written last (every process's files are on disk: callers wait for them): the size and digest of
        every file the checkpoint holds, ours and Trainer's, which a resume verifies before loading anything, and the
        training loss summed over every step so far (and the blocks the held-out measurements scored so far)."""
        if self.should_save:
            prior = self.resumed_marker or {}
            probe = {"probe_blocks_scored": self.probe.blocks_scored} if self.probe is not None else {}
            write_json(Path(checkpoint) / COMPLETE, {
                "step": step, "run_id": self.run_id(), "loss_sum": float(prior.get("loss_sum", 0.0)) + loss_sum_this_call,
                **probe, "digest": DIGEST, "files": digest_files(Path(checkpoint))})

    def finish(self, checkpoint: str | Path, step: int, loss_sum_this_call: float, rotate: tuple | None = None) -> None:
        """After Trainer wrote a checkpoint: the curriculum state, then (every process's RNG state on disk) the
        marker, then Trainer's rotation of older checkpoints (``rotate``: save_total_limit, best checkpoint), which
        ``compat.py`` held back until now."""
        self.save(checkpoint, step)
        self._written_for = None
        self.accelerator.wait_for_everyone()
        self.mark_complete(checkpoint, step, loss_sum_this_call)
        if self.should_save and rotate is not None:
            rotate_checkpoints(output_dir=str(self.output_dir), save_total_limit=rotate[0],
                               best_model_checkpoint=rotate[1], use_mtime=True)

    def restore(self, ckpt: Path, process_index: int) -> None:
        """Load the curriculum (and its decisions and the epoch's records so far) from ``ckpt``. Later epochs' logs of
        the timeline that crashed are deleted (they are written again)."""
        self.resumed_marker = read_json(ckpt / COMPLETE, "checkpoint marker")
        if self.probe is not None:  # counted from the start of the run, not of this train() call
            self.probe.blocks_scored = int(self.resumed_marker.get("probe_blocks_scored", 0))
        cur = self.curriculum
        if cur is None:
            return
        saved = ckpt / CKPT_DIR
        cur.load(saved)
        if self.stream is not None:
            self.stream.load(saved)
        self.recorder.clear()
        if (saved / EVENTS).is_file():
            self.reports.events = list(read_json(saved / EVENTS, "curriculum reports"))
        if (saved / PENDING).is_file() and process_index == 0:  # one copy, gathered later
            self.recorder.load(read_table(saved / PENDING, "pending block losses").to_pydict())
        if self.should_save:
            for p in (self.output_dir / LOG_DIR).glob("epoch-*.parquet"):
                if int(p.name.split("-")[1]) > cur.epoch:
                    p.unlink()

    def whole_run_loss(self, resumed_part: float, global_step: int) -> float:
        """Trainer averages the training loss over the steps of this ``train()`` call; add the steps before the
        checkpoint (their summed loss is in its marker)."""
        prior = self.resumed_marker or {}
        start, total = int(prior.get("step", 0)), float(prior.get("loss_sum", 0.0))
        return (total + resumed_part * (global_step - start)) / global_step if global_step > 0 else resumed_part


def _records_arrow(records: dict):
    import pyarrow as pa

    return pa.table({k: pa.array(np.asarray(v)) for k, v in records.items()})
