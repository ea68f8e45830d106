"""The curriculum log: every trained block's mean token loss, one Parquet file per plan epoch, written atomically.

Columns: block_id int64, domain_id int32, epoch int32 (global plan epoch), phase string (learn/focus/review),
phase_index int32, step int64 (the optimizer step the block was trained in, 1-based), loss float32 (mean token
cross-entropy; NaN/inf kept as they were). Rows are sorted by (step, block_id), so the file does not depend on how
many processes trained the epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curricula.curriculum.plan import PhaseEpoch

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


def sort_records(block_id: np.ndarray, domain_id: np.ndarray, step: np.ndarray, loss: np.ndarray) -> dict:
    order = np.lexsort((block_id, step))
    return {"block_id": block_id[order], "domain_id": domain_id[order], "step": step[order], "loss": loss[order]}


def epoch_log_path(log_dir: Path, epoch: PhaseEpoch) -> Path:
    return Path(log_dir) / f"epoch-{epoch.index:03d}-{epoch.kind}.parquet"


def records_table(records: dict, epoch: PhaseEpoch) -> pa.Table:
    n = len(records["block_id"])
    return pa.table(
        {
            "block_id": pa.array(records["block_id"], pa.int64()),
            "domain_id": pa.array(records["domain_id"], pa.int32()),
            "epoch": pa.array(np.full(n, epoch.index, dtype=np.int32)),
            "phase": pa.array([epoch.kind] * n, pa.string()),
            "phase_index": pa.array(np.full(n, epoch.phase_index, dtype=np.int32)),
            "step": pa.array(records["step"], pa.int64()),
            "loss": pa.array(records["loss"], pa.float32()),
        },
        schema=SCHEMA,
    )


def write_epoch_log(log_dir: Path, epoch: PhaseEpoch, records: dict) -> Path:
    from curricula.run_layout import write_parquet

    return write_parquet(epoch_log_path(log_dir, epoch), records_table(records, epoch))


def read_curriculum_log(run_dir: Path) -> pa.Table:
    """All epochs of a run (``RUN_DIR`` or ``RUN_DIR/curriculum``), in epoch order."""
    run_dir = Path(run_dir)
    log_dir = run_dir / LOG_DIR if (run_dir / LOG_DIR).is_dir() else run_dir
    files = sorted(log_dir.glob("epoch-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no curriculum log (epoch-*.parquet) in {log_dir}; is this a curricula run folder?")
    return pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files])
