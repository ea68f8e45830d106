"""The epoch boundary: every process gathers the epoch's block losses, the curriculum decides the next epoch, the
curriculum log is written, and large writes go to a background thread.

* **Records**: each process's block losses of the epoch are gathered (collective), sorted, written as the epoch's
  curriculum log and handed to ``Curriculum.end_epoch`` (methods that need ``block_records``).
* **Decision**: ``end_epoch`` then ``start_epoch(next)``. With several processes and a ``NodeShared`` capability (the
  LFR index table), one process per node decides and writes the state to a node-local file that every process of
  the node memory-maps, instead of each holding a private copy.
* **Off the critical path**: ``write_boundary_logs`` (e.g. the table with every block's latest loss) runs in a
  background thread; it is joined before the next boundary, a checkpoint or the end, and nothing it reads changes
  before then.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from curricula.logs import LOG_DIR, sort_records, write_epoch_log
from curricula.methods.seam import Curriculum, EpochRecords, Report
from curricula.run_layout import write_text

logger = logging.getLogger(__name__)


class ReportLog:
    """The curriculum's decisions (``Report.event``) so far; the reports file is rewritten from them, so a resumed run
    has one line per decision however often it restarted."""

    def __init__(self, path: Path | None):
        self.path = path  # None: a process that does not write
        self.events: list[dict] = []

    def handle(self, report: Report | None) -> dict[str, float]:
        """Log the warnings, record the event; returns the report's metrics."""
        if report is None:
            return {}
        for w in report.warnings:
            logger.warning(w)
        if report.event is not None:
            self.events.append(report.event)
            if self.path is not None:
                write_text(self.path, "".join(json.dumps(e) + "\n" for e in self.events))
        return dict(report.metrics)


class BackgroundWriter:
    """One write at a time in a daemon thread; ``join`` re-raises what it raised."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self, fn: Callable, *args) -> None:
        self.join()

        def run():
            try:
                fn(*args)
            except BaseException as err:  # noqa: BLE001  (re-raised where the write is joined)
                self._error = err

        self._thread = threading.Thread(target=run, name="curricula-log-write", daemon=True)
        self._thread.start()

    def join(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
            error, self._error = self._error, None
            if error is not None:
                raise error


class PhaseBoundary:
    """Runs ``Curriculum`` epoch boundaries for a trainer (see the module docstring)."""

    def __init__(self, curriculum: Curriculum, recorder, accelerator, args, check_divergence: Callable,
                 reports: ReportLog, writer: BackgroundWriter):
        self.curriculum, self.recorder, self.accelerator = curriculum, recorder, accelerator
        self.log_dir, self.should_save = Path(args.output_dir) / LOG_DIR, args.should_save
        self.share_node_state = getattr(args, "share_index_table", True)
        self.run_key = str(Path(args.output_dir).resolve())
        self.check_divergence, self.reports, self.writer = check_divergence, reports, writer

    def gather_records(self) -> EpochRecords | None:
        if "block_records" not in self.curriculum.needs:
            return None
        records = EpochRecords(**sort_records(**self.recorder.gather(self.accelerator)))
        self.recorder.clear()
        return records

    def run(self) -> dict[str, float]:
        """The boundary at the end of the current epoch (collective); returns the metrics to log."""
        self.writer.join()
        cur = self.curriculum
        index = cur.epoch
        records = self.gather_records()
        if records is not None:
            if self.should_save:
                write_epoch_log(self.log_dir, cur.epoch_label(index), vars(records))
            finite = records.loss[np.isfinite(records.loss)]
            self.check_divergence(f"epoch {index}", len(records), len(records) - finite.size,
                                  float(finite.mean()) if finite.size else float("nan"))
        nxt = index + 1 if index + 1 < len(cur.epoch_steps()) else None
        shared_state = cur.node_shared()
        sharing = shared_state is not None and self.accelerator.num_processes > 1 and self.share_node_state
        shared = self.node_file(nxt) if sharing else None
        report = Report()
        # with a shared state one process per node decides; after the last epoch the others have nothing to follow
        # (they never save), so they do not build the state at all: one copy per node up to the end
        if not sharing or self.accelerator.is_local_main_process:
            report.merge(cur.end_epoch(records))
            if nxt is not None:
                report.merge(cur.start_epoch(nxt))
            if shared is not None:
                shared_state.save_shared(shared)
        if shared is not None:
            self.accelerator.wait_for_everyone()
            shared_state.adopt_shared(shared, nxt)
            self.accelerator.wait_for_everyone()  # every process has mapped it: the name can go (the mapping stays)
            if self.accelerator.is_local_main_process:
                shared.unlink(missing_ok=True)
        metrics = self.reports.handle(report)
        if self.should_save:
            self.writer.start(cur.write_boundary_logs, self.log_dir)
        return metrics

    def node_file(self, epoch: int | None) -> Path | None:
        """Where the processes of a node share the next epoch's state (several processes, the next epoch known): a
        node-local file (``CURRICULA_SHARED_DIR``, default /dev/shm)."""
        if epoch is None or self.accelerator.num_processes == 1 or not self.share_node_state:
            return None
        root = Path(os.environ.get("CURRICULA_SHARED_DIR") or ("/dev/shm" if os.access("/dev/shm", os.W_OK)
                                                                 else tempfile.gettempdir()))
        key = "|".join([self.run_key, os.environ.get("MASTER_ADDR", ""), os.environ.get("MASTER_PORT", ""),
                        os.environ.get("TORCHELASTIC_RUN_ID", "")])
        return root / f"curricula-{hashlib.sha1(key.encode()).hexdigest()[:12]}-table-{epoch:04d}.arrow"
