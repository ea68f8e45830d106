"""The index table: every packed block with its latest statistics, one row per block (row == block_id).

Columns (``SCHEMA``): ``block_id`` int64, ``domain_id`` int32, ``loss`` float32 (latest mean token loss; NaN = never
seen), ``ppl`` float32 (= exp(loss)), ``last_epoch`` int32 (-1 = never seen), ``visits`` int32, ``eligible`` bool (in
the current phase's set).

Why numpy columns behind an Arrow face: Arrow arrays are immutable, and a phase boundary rewrites up to every row, so
the working copy is a set of numpy arrays that ``to_arrow`` wraps without copying (only ``eligible`` is bit-packed).
``save`` writes Arrow IPC atomically; ``load`` memory-maps it, so reopening a 100 M-block table is instant and a column
is copied only when it is first written to. Everything is vectorised; nothing loops over blocks in Python.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from curricula.errors import CurriculaError

FORMAT = "curricula-index-table/1"
SCHEMA = pa.schema(
    [
        ("block_id", pa.int64()),
        ("domain_id", pa.int32()),
        ("loss", pa.float32()),
        ("ppl", pa.float32()),
        ("last_epoch", pa.int32()),
        ("visits", pa.int32()),
        ("eligible", pa.bool_()),
    ],
    metadata={"format": FORMAT},
)
_COLUMNS = [f.name for f in SCHEMA]
_STATE = ("domain_id", "loss", "ppl", "last_epoch", "visits", "eligible")  # block_id is implied by the row
# A NaN bit pattern marking "not written" in update's scatter buffer; an input carrying it takes the slow path.
_SENTINEL = np.uint32(0xFFFFA5A5)
_THREADED_SCATTER_MIN = 1 << 22


class IndexTableError(CurriculaError, IndexError):
    """Input an index table cannot take (wrong shapes, ids out of range, not a table); the message says which."""


def _readonly(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.flags.writeable = False
    return v


def _scatter(dst: np.ndarray, ids: np.ndarray, values: np.ndarray) -> None:
    """``dst[ids] = values``, split over threads for large inputs (numpy releases the GIL for fancy assignment; a
    random scatter is memory-latency bound, so 2 threads gain ~25 %). With duplicate ids the winner between threads is
    undefined, which is why ``update`` checks for duplicates afterwards and redoes them deterministically."""
    k = 1 if ids.size < _THREADED_SCATTER_MIN else min(4, len(os.sched_getaffinity(0)))
    if k == 1:
        dst[ids] = values
        return
    cuts = np.linspace(0, ids.size, k + 1).astype(np.int64)

    def part(i: int) -> None:
        a, b = cuts[i], cuts[i + 1]
        dst[ids[a:b]] = values[a:b]

    with ThreadPoolExecutor(k) as ex:
        list(ex.map(part, range(k)))


def _last_wins(ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deduplicate: unique ids (ascending), the value of each id's LAST occurrence in input order, occurrence counts."""
    order = np.argsort(ids, kind="stable")
    s = ids[order]
    last = np.ones(s.size, dtype=bool)
    np.not_equal(s[1:], s[:-1], out=last[:-1])
    pos = np.flatnonzero(last)
    counts = np.diff(pos, prepend=-1).astype(np.int32)
    return s[pos], values[order[pos]], counts


def _write_ipc(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


class _Columns(dict):
    """The table's columns. The per-block statistics are built when first used: a process that only follows another
    process's decisions (``LFRCurriculum.adopt_shared``) holds ``domain_id`` and ``eligible`` only (5 B/block)."""

    _DEFAULTS = {"loss": (np.float32, np.nan), "ppl": (np.float32, np.nan), "last_epoch": (np.int32, -1),
                 "visits": (np.int32, 0)}

    def __missing__(self, name: str) -> np.ndarray:
        dtype, fill = self._DEFAULTS[name]
        self[name] = a = np.full(len(self["domain_id"]), fill, dtype=dtype)
        return a


class IndexTable:
    """All blocks with their latest loss/perplexity, visit counts and current-phase eligibility.

    Build with ``IndexTable.new(domain_ids)`` or ``IndexTable.load(path)``. Column properties (``loss``, ``ppl``, ...)
    are read-only numpy views; change state through ``update`` and ``set_eligible``. After the first large update the
    table keeps one spare float32 buffer (4 bytes/block) for the next one.
    """

    def __init__(self, columns: dict[str, np.ndarray], *, block_id: np.ndarray | None = None, source=None):
        n = len(columns["domain_id"])
        for name, col in columns.items():
            if col.shape != (n,):
                raise IndexTableError(f"column {name!r} has shape {col.shape}, expected ({n},)")
        self._c = _Columns(columns)
        self._block_id = block_id  # created on first to_arrow(); memory-mapped after load()
        self._source = source  # keeps a memory map alive while columns point into it
        self._domain_runs: list[tuple[int, int, int]] | None | bool = False  # False = not computed yet
        self._spare: np.ndarray | None = None  # float32 scatter buffer reused by large updates (see _update_many)

    # ---- construction -------------------------------------------------------------------------------------------

    @classmethod
    def new(cls, domain_ids: np.ndarray) -> IndexTable:
        """A fresh table for ``len(domain_ids)`` blocks: nothing seen yet, every block eligible (a learn phase)."""
        d = np.asarray(domain_ids)
        if d.ndim != 1 or (d.size and d.dtype.kind not in "iu"):
            raise IndexTableError(f"domain_ids must be a 1-D integer array (one per block), got {d.dtype} {d.shape}")
        if d.size and (d.min() < 0 or d.max() > np.iinfo(np.int32).max):
            raise IndexTableError("domain_ids must be in [0, 2**31); they index the packed data's domain list")
        return cls({"domain_id": d.astype(np.int32, copy=True), "eligible": np.ones(d.size, dtype=bool)})

    @classmethod
    def from_arrow(cls, table: pa.Table, *, verify: bool = False, _source=None) -> IndexTable:
        """Adopt an Arrow table with ``SCHEMA``'s columns without copying (except ``eligible``, which is unpacked).
        ``block_id`` must be dense 0..N-1 in row order; its ends are always checked, every row with ``verify=True``."""
        missing = [c for c in _COLUMNS if c not in table.column_names]
        if missing:
            raise IndexTableError(f"not an index table: missing column(s) {missing}; expected {_COLUMNS}")
        cols: dict[str, np.ndarray] = {}
        for f in SCHEMA:
            col = table.column(f.name)
            if col.type != f.type:
                raise IndexTableError(f"column {f.name!r} is {col.type}, expected {f.type}")
            if col.null_count:
                raise IndexTableError(f"column {f.name!r} has {col.null_count} nulls; an index table has none")
            arr = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
            cols[f.name] = arr.to_numpy(zero_copy_only=False)
        bid, n = cols.pop("block_id"), table.num_rows
        if n and (bid[0] != 0 or bid[-1] != n - 1) or (verify and not np.array_equal(bid, np.arange(n))):
            raise IndexTableError("block_id must be dense 0..N-1 in row order (row == block_id)")
        return cls(cols, block_id=bid, source=_source)

    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: bool = False) -> IndexTable:
        """Memory-map a table written by ``save`` (zero-copy; columns are copied on first write)."""
        source = pa.memory_map(str(path), "r")
        table = ipc.open_file(source).read_all()
        return cls.from_arrow(table, verify=verify, _source=source)

    # ---- read access --------------------------------------------------------------------------------------------

    @property
    def n(self) -> int:
        return len(self._c["domain_id"])

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        seen = int(np.count_nonzero(self._c["visits"]))
        return f"IndexTable(n={self.n}, seen={seen}, eligible={self.n_eligible})"

    domain_id = property(lambda self: _readonly(self._c["domain_id"]))
    loss = property(lambda self: _readonly(self._c["loss"]))
    ppl = property(lambda self: _readonly(self._c["ppl"]))
    last_epoch = property(lambda self: _readonly(self._c["last_epoch"]))
    visits = property(lambda self: _readonly(self._c["visits"]))
    eligible = property(lambda self: _readonly(self._c["eligible"]))

    @property
    def n_eligible(self) -> int:
        return int(np.count_nonzero(self._c["eligible"]))

    def eligible_ids(self) -> np.ndarray:
        """Ids of the blocks in the current set, ascending (int64)."""
        return np.flatnonzero(self._c["eligible"])

    def order(self, seed: int, epoch_index: int) -> np.ndarray:
        """The eligible ids in the deterministic random order epoch ``epoch_index`` trains them in
        (``curricula.methods.lfr.order.EpochOrder``; materialised here, for analysis and tests: training reads it
        lazily). Depends only on (eligible set, seed, epoch_index), so every process computes the same order."""
        for name, v in (("seed", seed), ("epoch_index", epoch_index)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
                raise IndexTableError(f"{name}={v!r} must be a non-negative integer")
        from curricula.methods.lfr.order import EpochOrder

        return EpochOrder(self._c["eligible"], int(seed), int(epoch_index)).all()

    def count_per_domain(self, mask: np.ndarray) -> dict[int, int]:
        """Number of True rows of a block mask in each domain present in the table."""
        runs = self._runs()
        if runs is not None:  # domains in contiguous runs (as packed): count slices, no pass per domain id
            out: dict[int, int] = {}
            for d, a, b in runs:
                out[d] = out.get(d, 0) + int(np.count_nonzero(mask[a:b]))
            return out
        d = self._c["domain_id"]
        present = np.flatnonzero(np.bincount(d))
        counts = np.bincount(d[mask], minlength=int(present[-1]) + 1 if present.size else 0)
        return {int(i): int(counts[i]) for i in present}

    def per_domain_summary(self) -> pa.Table:
        """Per domain: blocks, eligible, seen (visited at least once), nonfinite (latest loss NaN/inf among seen), and
        mean_ppl over blocks whose latest perplexity is finite (NaN if none)."""
        c = self._c
        d = c["domain_id"]
        size = int(d.max()) + 1 if d.size else 0
        blocks = np.bincount(d, minlength=size)
        present = np.flatnonzero(blocks)
        seen = c["visits"] > 0
        fin = np.isfinite(c["ppl"])
        count = lambda m: np.bincount(d[m], minlength=size)[present]  # noqa: E731
        n_fin = count(fin)
        sums = np.bincount(d[fin], weights=c["ppl"][fin].astype(np.float64), minlength=size)[present]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n_fin > 0, sums / n_fin, np.nan)
        return pa.table(
            {
                "domain_id": pa.array(present.astype(np.int32)),
                "blocks": pa.array(blocks[present].astype(np.int64)),
                "eligible": pa.array(count(c["eligible"]).astype(np.int64)),
                "seen": pa.array(count(seen).astype(np.int64)),
                "nonfinite": pa.array(count(seen & ~np.isfinite(c["loss"])).astype(np.int64)),
                "mean_ppl": pa.array(mean.astype(np.float64)),
            }
        )

    def to_arrow(self) -> pa.Table:
        """The table as Arrow (``SCHEMA``). Zero-copy except ``eligible``: the arrays share memory with the live
        columns, so later in-place updates show through; ``save`` is the way to take a snapshot."""
        if self._block_id is None:
            self._block_id = np.arange(self.n, dtype=np.int64)
        c = self._c
        arrays = [pa.array(self._block_id)] + [pa.array(c[name]) for name in _STATE]
        return pa.Table.from_arrays(arrays, schema=SCHEMA)

    # ---- writes -------------------------------------------------------------------------------------------------

    def _own(self, name: str, keep: bool = True) -> np.ndarray:
        """A writable column (copied from the memory map on first write; ``keep=False`` when it will be overwritten)."""
        a = self._c[name]
        if not a.flags.writeable:
            a = a.copy() if keep else np.empty_like(a)
            self._c[name] = a
        return a

    def _check_ids(self, block_ids, what: str = "block_ids") -> np.ndarray:
        ids = np.asarray(block_ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise IndexTableError(f"{what} must be a 1-D integer array, got {ids.dtype} {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.n):
            raise IndexTableError(f"{what} must be in [0, {self.n}); got [{ids.min()}, {ids.max()}]")
        return ids.astype(np.int64, copy=False)

    def update(self, block_ids, losses, epoch: int) -> None:
        """Record the latest mean token loss of some blocks, seen in global epoch ``epoch``.

        Sets loss, ppl = exp(loss), last_epoch = epoch and adds one visit per occurrence. A NaN/inf loss is stored as
        is (selection never ranks it). If an id occurs several times, its last occurrence's loss is kept.
        Cost: one random scatter for any size; a full epoch (every block once) swaps in the new loss column whole.
        """
        ids = self._check_ids(block_ids)
        vals = np.asarray(losses, dtype=np.float32)
        if vals.shape != ids.shape:
            raise IndexTableError(f"losses has shape {vals.shape}, block_ids {ids.shape}; give one loss per block id")
        if not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool) or not 0 <= epoch < 2**31:
            raise IndexTableError(f"epoch={epoch!r} must be a non-negative integer (the global epoch index)")
        if ids.size == 0:
            return
        with np.errstate(over="ignore", invalid="ignore"):
            if ids.size * 8 < self.n:
                self._update_few(ids, vals, int(epoch))
            else:
                self._update_many(ids, vals, int(epoch))

    def _update_few(self, ids: np.ndarray, vals: np.ndarray, epoch: int) -> None:
        s = np.sort(ids)
        counts: np.ndarray | int = 1
        if np.any(s[1:] == s[:-1]):
            ids, vals, counts = _last_wins(ids, vals)
        self._own("loss")[ids] = vals
        self._own("ppl")[ids] = np.exp(vals)
        self._own("last_epoch")[ids] = epoch
        self._own("visits")[ids] += counts

    def _update_many(self, ids: np.ndarray, vals: np.ndarray, epoch: int) -> None:
        # Scatter into a sentinel-filled buffer: the rows that lost the sentinel are the touched ones, so one scatter
        # gives both the values and the mask; then every column is written with streaming (non-random) passes.
        # The buffer is kept between calls (after a full epoch it is the previous loss column): reusing it saves
        # faulting in 4 bytes/block of fresh memory every epoch.
        new, self._spare = self._spare, None
        if new is None:
            new = np.empty(self.n, dtype=np.float32)
        bits = new.view(np.uint32)
        bits.fill(_SENTINEL)
        _scatter(new, ids, vals)
        touched = bits != _SENTINEL
        n_touched = int(np.count_nonzero(touched))
        counts = None
        if n_touched != ids.size:  # duplicate ids, or an input that equals the sentinel: redo deterministically
            vals = np.where(np.isnan(vals), np.float32(np.nan), vals)  # canonical NaN, never the sentinel
            ids, vals, counts = _last_wins(ids, vals)
            bits.fill(_SENTINEL)
            _scatter(new, ids, vals)
            np.not_equal(bits, _SENTINEL, out=touched)
            n_touched = ids.size
        visits = self._own("visits")
        if n_touched == self.n:  # every block: whole-column writes
            old, self._c["loss"] = self._c["loss"], new
            # recycle the old column only if nothing else (a view, an Arrow table from to_arrow) still holds it
            self._spare = old if old.flags.writeable and old.base is None and sys.getrefcount(old) <= 2 else None
            del old
            np.exp(new, out=self._own("ppl", keep=False))
            self._own("last_epoch", keep=False).fill(epoch)
            if counts is None:
                visits += 1
            else:
                visits[ids] += counts
        else:
            np.copyto(self._own("loss"), new, where=touched)
            np.exp(new, out=self._own("ppl"), where=touched)
            self._spare = new
            np.copyto(self._own("last_epoch"), np.int32(epoch), where=touched)
            if counts is None:
                np.add(visits, 1, out=visits, where=touched)
            else:
                visits[ids] += counts

    def set_eligible(self, selection) -> None:
        """Make exactly these blocks the current set: a bool mask of length n, or an array of block ids."""
        sel = np.asarray(selection)
        if sel.dtype == bool:
            if sel.shape != (self.n,):
                raise IndexTableError(f"an eligibility mask needs shape ({self.n},), got {sel.shape}")
            np.copyto(self._own("eligible", keep=False), sel)
            return
        ids = self._check_ids(sel, "eligible block ids")
        el = self._own("eligible", keep=False)
        el.fill(False)
        el[ids] = True

    def set_all_eligible(self) -> None:
        """Every block in the current set (learn and review phases)."""
        self._own("eligible", keep=False).fill(True)

    # ---- persistence --------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, *, fsync: bool = False) -> Path:
        """Write Arrow IPC to a temporary file next to ``path``, then ``os.replace`` it: readers see the old file or
        the new one, never a partial one, and a failed write leaves no temporary behind. ``fsync=True`` also makes
        the new file durable across power loss (slow for large tables)."""
        from curricula.run_layout import atomic_write

        path = Path(path)

        def write(tmp: Path) -> None:
            _write_ipc(self.to_arrow(), tmp)
            if fsync:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

        atomic_write(path, write)
        if fsync:
            fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return path

    def _runs(self) -> list[tuple[int, int, int]] | None:
        """The domain column as (domain, start, stop) runs, or None when it has too many runs to be worth it.
        Packing puts each domain's blocks in one run. Computed once: domain ids never change."""
        if self._domain_runs is False:
            d = self._c["domain_id"]
            if d.size == 0:
                self._domain_runs = []
            else:
                starts = np.flatnonzero(d[1:] != d[:-1]) + 1
                self._domain_runs = (
                    None
                    if starts.size > 4096
                    else [
                        (int(d[a]), int(a), int(b))
                        for a, b in zip(np.r_[0, starts], np.r_[starts, d.size])
                    ]
                )
        return self._domain_runs  # type: ignore[return-value]
