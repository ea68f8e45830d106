"""LFR's index table (``curricula/methods/lfr/index_table.py``): schema, scatter updates, eligibility and order, a
memory-mapped and atomic save, per-domain summaries. Fast (no torch, no models)."""

import numpy as np
import pyarrow as pa
import pytest

import curricula.methods.lfr.index_table as index_table_mod
from curricula.methods.lfr import IndexTable


def test_new_table_defaults_and_schema():
    t = IndexTable.new(np.array([0, 0, 1, 2], dtype=np.int64))
    a = t.to_arrow()
    assert a.schema.names == ["block_id", "domain_id", "loss", "ppl", "last_epoch", "visits", "eligible"]
    assert [str(f.type) for f in a.schema] == ["int64", "int32", "float", "float", "int32", "int32", "bool"]
    assert a.column("block_id").to_pylist() == [0, 1, 2, 3]
    assert np.isnan(t.loss).all() and (t.last_epoch == -1).all() and (t.visits == 0).all() and t.eligible.all()
    with pytest.raises(ValueError):
        t.loss[0] = 1.0  # read-only views


@pytest.mark.parametrize("n", [50, 1000])  # few ids: direct scatter; many ids: sentinel buffer path
def test_update_scatter_partial_full_duplicates_and_nonfinite(n):
    rng = np.random.default_rng(0)
    t = IndexTable.new(np.zeros(n, np.int32))
    ids = rng.permutation(n)
    losses = rng.random(n, dtype=np.float32) * 4
    t.update(ids, losses, epoch=0)
    assert np.array_equal(t.loss[ids], losses) and np.allclose(t.ppl, np.exp(t.loss))
    assert (t.visits == 1).all() and (t.last_epoch == 0).all()
    # partial update with duplicates: the last occurrence wins, every occurrence counts as a visit
    part = np.array([3, 7, 3, 9, 3])
    vals = np.array([1.0, 2.0, 1.5, np.nan, 0.25], dtype=np.float32)
    if n == 1000:  # make it large enough for the many-ids path
        part = np.r_[part, np.arange(10, 300)]
        vals = np.r_[vals, np.full(290, 5.0, np.float32)]
    t.update(part, vals, epoch=1)
    assert t.loss[3] == 0.25 and t.visits[3] == 4 and t.last_epoch[3] == 1
    assert t.loss[7] == 2.0 and t.visits[7] == 2
    assert np.isnan(t.loss[9]) and np.isnan(t.ppl[9]) and t.visits[9] == 2  # stored as is
    assert t.last_epoch[0] == 0 and t.visits[0] == 1 and t.loss[0] == losses[np.flatnonzero(ids == 0)[0]]
    t.update([5, 6], [np.inf, -np.inf], epoch=2)
    assert t.ppl[5] == np.inf and t.ppl[6] == 0.0
    for bad_ids, exc in (([n], IndexError), ([-1], IndexError), ([0.5], ValueError)):
        with pytest.raises(exc):
            t.update(bad_ids, [1.0], epoch=3)
    with pytest.raises(ValueError, match="one loss per block id"):
        t.update([1, 2], [1.0], epoch=3)


def test_full_updates_recycle_buffers_only_when_nobody_holds_them(table_with):
    n = 64
    t = table_with(np.ones(n))
    held = t.loss  # a view of the current loss column
    arrow = t.to_arrow()
    t.update(np.arange(n), np.full(n, 2.0), epoch=1)
    t.update(np.arange(n), np.full(n, 3.0), epoch=2)
    t.update(np.arange(n), np.full(n, 4.0), epoch=3)
    assert (held == 1).all() and (arrow.column("loss").to_numpy() == 1).all()  # never reused as a scratch buffer
    assert (t.loss == 4).all() and (t.visits == 4).all() and (t.last_epoch == 3).all()
    assert t._spare is not None  # unheld old columns are recycled


def test_update_input_carrying_the_sentinel_nan_is_still_recorded():
    n = 64
    t = IndexTable.new(np.zeros(n, np.int32))
    vals = np.ones(n, np.float32)
    vals.view(np.uint32)[5] = index_table_mod._SENTINEL
    t.update(np.arange(n), vals, epoch=0)
    assert (t.visits == 1).all() and np.isnan(t.loss[5]) and (t.loss[np.arange(n) != 5] == 1).all()


def test_set_eligible_and_order_determinism():
    t = IndexTable.new(np.zeros(1000, np.int32))
    assert np.array_equal(t.order(0, 0), t.order(0, 0))
    keep = np.arange(0, 1000, 3)
    t.set_eligible(keep)
    assert np.array_equal(t.eligible_ids(), keep) and t.n_eligible == keep.size
    a, b = t.order(seed=7, epoch_index=3), t.order(seed=7, epoch_index=3)
    assert np.array_equal(a, b)  # same on every call / process
    assert np.array_equal(np.sort(a), keep)  # a permutation of the eligible ids
    assert not np.array_equal(a, keep)
    assert not np.array_equal(a, t.order(seed=7, epoch_index=4))
    assert not np.array_equal(a, t.order(seed=8, epoch_index=3))
    mask = np.zeros(1000, bool)
    mask[[1, 2, 999]] = True
    t.set_eligible(mask)
    assert t.eligible_ids().tolist() == [1, 2, 999]
    t.set_all_eligible()
    assert t.n_eligible == 1000
    with pytest.raises(ValueError, match="shape"):
        t.set_eligible(np.ones(3, bool))
    with pytest.raises(ValueError, match="non-negative"):
        t.order(-1, 0)


def test_save_load_roundtrip_is_memory_mapped_and_copy_on_write(tmp_path, table_with):
    n = 200_000
    rng = np.random.default_rng(1)
    t = table_with(rng.random(n) * 3, domains=np.repeat(np.arange(4), n // 4))
    t.update([0, 1], [np.nan, np.inf], epoch=1)
    t.set_eligible(np.arange(0, n, 2))
    path = t.save(tmp_path / "index.arrow")
    before = pa.total_allocated_bytes()
    u = IndexTable.load(path, verify=True)
    assert pa.total_allocated_bytes() - before <= 2 * n  # only the bit-packed eligible column is unpacked
    assert isinstance(u._source, pa.MemoryMappedFile)
    assert u.to_arrow().schema.equals(t.to_arrow().schema, check_metadata=True)
    for name in ("domain_id", "loss", "ppl", "last_epoch", "visits", "eligible"):
        assert np.array_equal(getattr(u, name), getattr(t, name), equal_nan=name in ("loss", "ppl")), name
    # writes copy the memory-mapped column; the file is untouched, and it can be replaced while mapped
    u.update([2], [9.0], epoch=2)
    assert u.loss[2] == 9.0 and IndexTable.load(path).loss[2] == t.loss[2]
    u.save(path)
    assert IndexTable.load(path).loss[2] == 9.0
    assert [p.name for p in tmp_path.iterdir()] == ["index.arrow"]


def test_save_is_atomic_on_failure(tmp_path, monkeypatch, table_with):
    path = tmp_path / "index.arrow"
    table_with([1.0, 2.0, 3.0]).save(path)
    original = path.read_bytes()

    def broken_write(table, tmp):
        tmp.write_bytes(b"ARROW1\0\0partial")
        raise OSError("disk full")

    monkeypatch.setattr(index_table_mod, "_write_ipc", broken_write)
    with pytest.raises(OSError, match="disk full"):
        table_with([4.0, 5.0, 6.0]).save(path)
    assert path.read_bytes() == original  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["index.arrow"]  # no temporary left behind
    assert np.allclose(IndexTable.load(path).loss, [1, 2, 3])


def test_from_arrow_rejects_non_index_tables(table_with):
    a = table_with([1.0, 2.0]).to_arrow()
    with pytest.raises(ValueError, match="missing column"):
        IndexTable.from_arrow(a.drop_columns(["ppl"]))
    bad = a.set_column(0, "block_id", pa.array([1, 0], pa.int64()))
    with pytest.raises(ValueError, match="dense"):
        IndexTable.from_arrow(bad)


def test_per_domain_summary(table_with):
    t = table_with([0.0, np.log(3), np.nan, np.log(2), np.log(4), np.inf], domains=[0, 0, 0, 2, 2, 2])
    t.set_eligible(np.array([0, 3]))
    s = t.per_domain_summary().to_pydict()
    assert s["domain_id"] == [0, 2] and s["blocks"] == [3, 3] and s["eligible"] == [1, 1]
    assert s["seen"] == [3, 3] and s["nonfinite"] == [1, 1]
    assert np.allclose(s["mean_ppl"], [2.0, 3.0])  # over finite perplexities only
