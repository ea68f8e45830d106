"""What a run logs while it trains, append-only and crash-safe.

**The curriculum log** (methods that record every block, e.g. LFR): every trained block's mean token loss, one
Parquet file per epoch (``curriculum/epoch-NNN-<phase>.parquet``), written atomically at the epoch's end. Columns:
block_id int64, domain_id int32, epoch int32, phase string (a free label: LFR's learn/focus/review, else ``train``),
phase_index int32, step int64 (the optimizer step the block was trained in, 1-based), loss float32 (mean token
cross-entropy; NaN/inf kept as they were). Rows are sorted by (step, block_id), so a file does not depend on how many
processes trained the epoch.

**Step logs** (``StepLog``; online methods' weights per step): rows appended in memory and written as a new Parquet
chunk at every checkpoint (``flush``) or every ``chunk_rows`` rows, so memory and checkpoints stay flat however long
the run is. A resumed run first cuts the rows after its resume step (a crashed timeline), then appends.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curricula.errors import CorruptFileError, MissingFileError

LOG_DIR = "curriculum"
SCHEMA = pa.schema(
    [
        ("block_id", pa.int64()),
        ("domain_id", pa.int32()),
        ("epoch", pa.int32()),
        ("phase", pa.string()),
        ("phase_index", pa.int32()),
        ("step", pa.int64()),
        ("loss", pa.float32()),
    ]
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")


def sort_records(block_id: np.ndarray, domain_id: np.ndarray, step: np.ndarray, loss: np.ndarray) -> dict:
    order = np.lexsort((block_id, step))
    return {"block_id": block_id[order], "domain_id": domain_id[order], "step": step[order], "loss": loss[order]}


def epoch_log_path(log_dir: Path, epoch) -> Path:
    """``epoch`` is an ``EpochLabel`` (index, phase, phase_index); the phase label is made file-name safe."""
    return Path(log_dir) / f"epoch-{epoch.index:03d}-{_UNSAFE.sub('_', str(epoch.phase))}.parquet"


def records_table(records: dict, epoch) -> pa.Table:
    n = len(records["block_id"])
    return pa.table(
        {
            "block_id": pa.array(records["block_id"], pa.int64()),
            "domain_id": pa.array(records["domain_id"], pa.int32()),
            "epoch": pa.array(np.full(n, epoch.index, dtype=np.int32)),
            "phase": pa.array([str(epoch.phase)] * n, pa.string()),
            "phase_index": pa.array(np.full(n, epoch.phase_index, dtype=np.int32)),
            "step": pa.array(records["step"], pa.int64()),
            "loss": pa.array(records["loss"], pa.float32()),
        },
        schema=SCHEMA,
    )


def write_epoch_log(log_dir: Path, epoch, records: dict) -> Path:
    from curricula.run_layout import write_parquet

    return write_parquet(epoch_log_path(log_dir, epoch), records_table(records, epoch))


def epoch_log_files(log_dir: Path) -> list[Path]:
    return sorted(Path(log_dir).glob("epoch-*.parquet"))


def read_curriculum_log(run_dir: Path) -> pa.Table:
    """All epochs of a run (``RUN_DIR`` or ``RUN_DIR/curriculum``), in epoch order."""
    run_dir = Path(run_dir)
    log_dir = run_dir / LOG_DIR if (run_dir / LOG_DIR).is_dir() else run_dir
    files = epoch_log_files(log_dir)
    if not files:
        raise MissingFileError(f"no curriculum log (epoch-*.parquet) in {log_dir}; is this a curricula run folder?")
    tables = []
    for f in files:
        try:
            tables.append(pq.read_table(f, schema=SCHEMA))
        except (OSError, pa.ArrowException) as err:
            raise CorruptFileError(f"curriculum log {f} cannot be read ({str(err).splitlines()[0]}); it was damaged "
                                   "after it was written: delete it to analyse the other epochs, or resume the run "
                                   "from a checkpoint taken before that epoch ended to write it again") from None
    return pa.concat_tables(tables)


class StepLog:
    """Per-step rows of float64 columns (``columns``), appended in memory and written in Parquet chunks
    (``chunk-<first step>.parquet``) under ``directory``. ``directory=None``: rows are counted, nothing is kept
    (processes other than the main one)."""

    def __init__(self, columns: list[str], chunk_rows: int = 4096):
        self.columns = list(columns)
        self.chunk_rows = int(chunk_rows)
        self.directory: Path | None = None
        self._steps = np.empty(self.chunk_rows, dtype=np.int64)
        self._rows = np.empty((self.chunk_rows, len(self.columns)), dtype=np.float64)
        self._n = 0

    def open(self, directory: Path | None, start_step: int) -> None:
        """Start appending after ``start_step``: rows logged after it (a crashed timeline) are cut."""
        self.directory, self._n = (Path(directory) if directory is not None else None), 0
        if self.directory is None or not self.directory.is_dir():
            return
        from curricula.run_layout import write_parquet

        kept = []
        for path in self.chunks():
            if int(path.stem.split("-")[1]) > start_step:
                path.unlink()
            else:
                kept.append(path)
        if kept:  # chunks hold increasing steps: only the last one kept can reach past start_step (O(1) at 1 M steps)
            table = self._read(kept[-1])
            if table.num_rows and int(table.column("step")[-1].as_py()) > start_step:
                keep = np.asarray(table.column("step")) <= start_step
                write_parquet(kept[-1], table.filter(pa.array(keep)))

    def append(self, step: int, row: np.ndarray) -> None:
        if self.directory is None:
            return
        self._steps[self._n] = step
        self._rows[self._n] = row
        self._n += 1
        if self._n == self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if self.directory is None or self._n == 0:
            return
        from curricula.run_layout import write_parquet

        n, self._n = self._n, 0
        cols = {"step": pa.array(self._steps[:n].copy())}
        for j, name in enumerate(self.columns):
            cols[name] = pa.array(self._rows[:n, j].copy())
        write_parquet(self.directory / f"chunk-{int(self._steps[0]):012d}.parquet", pa.table(cols))

    def chunks(self) -> list[Path]:
        return sorted(self.directory.glob("chunk-*.parquet")) if self.directory and self.directory.is_dir() else []

    def _read(self, path: Path) -> pa.Table:
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowException) as err:
            raise CorruptFileError(f"step log {path} cannot be read ({str(err).splitlines()[0]}); resume from an "
                                   "earlier complete checkpoint, or delete the file to lose only its rows") from None

    def read(self) -> pa.Table | None:
        """Every row written so far (after ``flush``), in step order; None when nothing was written."""
        tables = [self._read(p) for p in self.chunks()]
        return pa.concat_tables(tables) if tables else None
