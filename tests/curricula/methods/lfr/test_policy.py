"""The pure curriculum core: plans, the index table, LFR focus selection, block fates. Fast (no torch, no models)."""

import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import curricula.methods.lfr.index_table as index_table_mod
from curricula.methods.lfr import (
    FATES,
    IndexTable,
    LFRPolicy,
    Phase,
    Plan,
    PlanError,
    block_fates,
    n_dropped,
    select_focus,
    summarize_fates,
)

# ---- plans ----------------------------------------------------------------------------------------------------------


def test_lfr_recipe_reps2_expands_to_the_paper_schedule():
    plan = Plan.from_recipe("lfr")
    assert plan.name == "lfr-reps2" and plan.params == {"reps": 2, "reselect": True}
    assert [(p.kind, p.epochs, p.drop_percent) for p in plan.phases] == [
        ("learn", 1, None),
        ("focus", 1, 50.0),
        ("review", 1, None),
        ("focus", 1, 70.0),
        ("focus", 1, 70.0),
    ]
    eps = plan.epochs()
    assert [(e.index, e.phase_index, e.kind, e.epoch_in_phase) for e in eps] == [
        (0, 0, "learn", 0),
        (1, 1, "focus", 0),
        (2, 2, "review", 0),
        (3, 3, "focus", 0),
        (4, 4, "focus", 0),
    ]
    assert plan.blocks_per_epoch(1000) == [1000, 500, 1000, 300, 300]
    assert plan.blocks_per_epoch(7) == [7, 7 - 3, 7, 7 - 4, 7 - 4]  # floor(3.5) = 3, floor(4.9) = 4 leave
    assert Plan.from_dict(plan.to_dict()) == plan


def test_lfr_reps5_recipe_and_keyword_override_agree():
    five = Plan.from_recipe("lfr_reps5")
    assert five.params == {"reps": 5, "reselect": True} and five.n_epochs == 8
    assert five.blocks_per_epoch(1000) == [1000, 500, 1000] + [300] * 5
    assert Plan.from_recipe("lfr", reps=5).phases == five.phases
    assert Plan.from_recipe("lfr_reps5", reps=2).phases == Plan.from_recipe("lfr").phases
    assert Plan.from_recipe("lfr", reps="3").n_epochs == 6  # a string from a command line is accepted


def test_from_yaml_path_text_nested_repeat_and_multi_epoch_phase(tmp_path):
    text = """
params: {n: 2, s: 25}
phases:
  - {kind: learn, epochs: 2}
  - repeat: "{n}"
    phases:
      - {kind: focus, epochs: 3, drop_percent: "{s}"}
      - repeat: 2
        phases: [{kind: review, epochs: 1}]
"""
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    from_path, from_text = Plan.from_yaml(path, s=12.5), Plan.from_yaml(text, s=12.5)
    assert from_path.name == "mine" and from_text.name == "plan"
    assert from_path.phases == from_text.phases
    assert [p.kind for p in from_path.phases] == ["learn", "focus", "review", "review", "focus", "review", "review"]
    eps = from_path.epochs()
    assert len(eps) == from_path.n_epochs == 2 + 2 * (3 + 2)
    assert [(e.kind, e.epoch_in_phase) for e in eps[2:5]] == [("focus", 0), ("focus", 1), ("focus", 2)]
    assert from_path.blocks_per_epoch(8)[2:5] == [7, 7, 7]  # floor(8 * 12.5 / 100) = 1


def test_n_dropped_is_exact_decimal_floor():
    assert n_dropped(10, 70) == 7  # floor(10 * 0.7) in binary floating point would give 6
    assert n_dropped(1000, 33.3) == 333
    assert n_dropped(3, 33.3) == 0
    assert n_dropped(100_000_000, 70) == 70_000_000
    assert n_dropped(7, 0) == 0 and n_dropped(7, 99.99) == 6


BAD_PLANS = [
    ("phases: [{kind: learn}, {kind: focus, drop_percent: 100}]", "outside [0, 100)"),
    ("phases: [{kind: learn}, {kind: focus, drop_percent: -5}]", "outside [0, 100)"),
    ("phases: [{kind: learn}, {kind: focus, epochs: 1}]", "needs drop_percent"),
    ("phases: [{kind: learn, drop_percent: 50}]", "only allowed on focus phases"),
    ("phases: [{kind: learn}, {kind: review, drop_percent: 10}]", "phases[1]: review phase: drop_percent=10"),
    ("phases: [{kind: learn, epochs: 0}]", "epochs=0 must be a positive integer"),
    ("phases: [{kind: learn, epochs: -2}]", "epochs=-2 must be a positive integer"),
    ("phases: [{kind: learn, epochs: 1.5}]", "epochs=1.5 must be a positive integer"),
    ("phases: [{kind: lern}]", "unknown phase kind 'lern'; valid kinds: learn, focus, review"),
    ("phases: []", "has no phases"),
    ("name: x", "has no phases"),
    ("", "the plan is empty"),
    ("phases: [{kind: focus, drop_percent: 50}]", "no block has a perplexity yet"),
    ("phases: [{kind: learn, epochs: '{ep}'}]", "unknown parameter {ep}"),
    (
        "params: {reps: 2}\nphases: [{kind: learn}, {repeat: '{rep}', phases: [{kind: review}]}]",
        "unknown parameter {rep}",
    ),
    ("phases: [{kind: learn}, {repeat: 0, phases: [{kind: review}]}]", "repeat=0 must be a positive integer"),
    ("phases: [{kind: learn, epoch: 1}]", "unknown key(s) ['epoch']"),
    ("phases: [{epochs: 1}]", "missing kind"),
    ("phases: [{kind: learn}, {repeat: 2, phases: [{kind: focus, drop_percent: 150}]}]", "phases[1].phases[0]"),
    ("phases: [{kind: learn]", "not valid YAML"),
]


@pytest.mark.parametrize("text,message", BAD_PLANS)
def test_bad_plan_names_the_problem(text, message):
    with pytest.raises(PlanError) as e:
        Plan.from_yaml(text)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)


def test_bad_plan_keyword_and_file_and_recipe():
    with pytest.raises(PlanError, match=r"unknown parameter\(s\) \['rep'\].*declares \['reps', 'reselect'\]"):
        Plan.from_recipe("lfr", rep=3)
    with pytest.raises(PlanError, match="not found"):
        Plan.from_yaml("/nonexistent/plan.yaml")
    with pytest.raises(PlanError, match="no bundled recipe 'lfx'; available: .*lfr"):
        Plan.from_recipe("lfx")
    with pytest.raises(PlanError, match="valid kinds"):
        Phase("warmup", 1)
    with pytest.raises(PlanError, match="starts with a focus phase"):
        Plan("p", [Phase("focus", 1, 10)])


# ---- index table ----------------------------------------------------------------------------------------------------


def table_with(losses, domains=None):
    """A table whose blocks were all seen once (epoch 0) with these losses (NaN/inf allowed)."""
    losses = np.asarray(losses, dtype=np.float32)
    t = IndexTable.new(np.zeros(losses.size, np.int32) if domains is None else np.asarray(domains))
    t.update(np.arange(losses.size), losses, epoch=0)
    return t


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


def test_full_updates_recycle_buffers_only_when_nobody_holds_them():
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


def test_save_load_roundtrip_is_memory_mapped_and_copy_on_write(tmp_path):
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


def test_save_is_atomic_on_failure(tmp_path, monkeypatch):
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


def test_from_arrow_rejects_non_index_tables():
    a = table_with([1.0, 2.0]).to_arrow()
    with pytest.raises(ValueError, match="missing column"):
        IndexTable.from_arrow(a.drop_columns(["ppl"]))
    bad = a.set_column(0, "block_id", pa.array([1, 0], pa.int64()))
    with pytest.raises(ValueError, match="dense"):
        IndexTable.from_arrow(bad)


def test_per_domain_summary():
    t = table_with([0.0, np.log(3), np.nan, np.log(2), np.log(4), np.inf], domains=[0, 0, 0, 2, 2, 2])
    t.set_eligible(np.array([0, 3]))
    s = t.per_domain_summary().to_pydict()
    assert s["domain_id"] == [0, 2] and s["blocks"] == [3, 3] and s["eligible"] == [1, 1]
    assert s["seen"] == [3, 3] and s["nonfinite"] == [1, 1]
    assert np.allclose(s["mean_ppl"], [2.0, 3.0])  # over finite perplexities only


# ---- LFR focus selection --------------------------------------------------------------------------------------------


def reference_kept(ppl, loss, s):
    """Full-sort reference: rank finite blocks by (ppl, block_id), drop the first floor(n*s/100)."""
    n = ppl.size
    finite = np.flatnonzero(np.isfinite(loss))
    ranked = finite[np.lexsort((finite, ppl[finite]))]
    dropped = ranked[: min(n_dropped(n, s), finite.size)]
    return np.setdiff1d(np.arange(n), dropped)


@pytest.mark.parametrize("s", [0, 12.5, 33.3, 50, 70, 99.9])
def test_select_focus_drops_exactly_the_lowest(s):
    rng = np.random.default_rng(int(s * 10))
    n = 10_007
    losses = np.round(rng.random(n) * 3, 2)  # rounding makes many ties
    t = table_with(losses, domains=np.repeat(np.arange(7), n // 7 + 1)[:n])
    kept, report = select_focus(t, s)
    assert kept.dtype == np.int64 and np.all(np.diff(kept) > 0)
    assert kept.size == n - n_dropped(n, s) == report.n_kept
    assert report.n_dropped == n_dropped(n, s) == report.n_drop_target and report.shortfall == 0
    assert np.array_equal(kept, reference_kept(t.ppl, t.loss, s))
    dropped = np.setdiff1d(np.arange(n), kept)
    if dropped.size:
        assert t.ppl[dropped].max() <= t.ppl[kept].min()
        assert report.threshold_ppl == t.ppl[dropped].max()
    expected = np.bincount(t.domain_id[kept], minlength=7)
    assert report.kept_per_domain == {d: int(expected[d]) for d in range(7)}


@pytest.mark.parametrize("sample", [20_000, 8])  # a bracketing sample; one too small to bracket (full fallback)
@pytest.mark.parametrize("nonfinite", [False, True])
def test_select_focus_large_table_path_is_exact(monkeypatch, sample, nonfinite):
    import curricula.methods.lfr.policy as lfr

    monkeypatch.setattr(lfr, "_SMALL", 1000)
    monkeypatch.setattr(lfr, "_SAMPLE", sample)
    rng = np.random.default_rng(sample)
    n = 60_000
    losses = np.round(rng.normal(3, 1, n), 3).astype(np.float32)
    if nonfinite:
        losses[rng.choice(n, 5000, replace=False)] = rng.choice([np.nan, np.inf, -np.inf], 5000)
    t = table_with(losses)
    for s in (1, 50, 70, 99):
        kept, r = select_focus(t, s)
        assert np.array_equal(kept, reference_kept(t.ppl, t.loss, s)), s
    same = table_with(np.ones(n))  # every value tied: the band is everything, so it falls back
    assert select_focus(same, 50)[0].tolist() == list(range(n // 2, n))


def test_select_focus_tie_rule_lower_block_id_leaves_first():
    ppl = np.array([2, 1, 2, 2, 1, 3, 2], dtype=np.float32)
    t = table_with(np.log(ppl))
    kept, r = select_focus(t, 50)  # floor(7 * 0.5) = 3 leave: both 1s, then the lowest-id 2 (block 0)
    assert kept.tolist() == [2, 3, 5, 6]
    assert (r.n_tied, r.n_tied_dropped) == (4, 1) and r.threshold_ppl == pytest.approx(2.0)
    same = table_with(np.zeros(10))
    assert select_focus(same, 50)[0].tolist() == [5, 6, 7, 8, 9]


def test_select_focus_keeps_and_reports_nonfinite_blocks():
    losses = np.array([1, np.nan, 2, np.inf, 3, -np.inf, 4, 5, 6, 7], dtype=np.float32)
    t = IndexTable.new(np.array([0] * 5 + [1] * 5))
    t.update(np.arange(10), losses, epoch=0)
    t2 = IndexTable.new(np.zeros(11, np.int32))
    t2.update(np.arange(10), losses, epoch=0)  # block 10 never seen (NaN)
    kept, r = select_focus(t, 50)  # 5 leave, all finite: losses 1, 2, 3, 4, 5
    assert kept.tolist() == [1, 3, 5, 8, 9]
    assert r.n_nonfinite_kept == 3 and r.n_dropped == 5 and r.shortfall == 0
    assert r.kept_per_domain == {0: 2, 1: 3}
    kept, r = select_focus(t, 90)  # 9 should leave but only 7 are finite: all 7 leave, 2 short
    assert kept.tolist() == [1, 3, 5] and r.n_dropped == 7 and r.shortfall == 2 and r.n_nonfinite_kept == 3
    kept, r = select_focus(t2, 50)  # floor(11/2) = 5 leave
    assert kept.tolist() == [1, 3, 5, 8, 9, 10] and r.n_nonfinite_kept == 4
    assert select_focus(IndexTable.new(np.zeros(4, np.int32)), 50)[0].tolist() == [0, 1, 2, 3]  # nothing seen yet


def test_select_focus_uses_latest_perplexity_of_all_blocks_including_stale():
    t = table_with([1, 2, 3, 4, 5, 6])  # learn, epoch 0
    kept, _ = select_focus(t, 50)
    assert kept.tolist() == [3, 4, 5]
    t.update(kept, [0.5, 4.5, 0.1], epoch=1)  # only the focus set is seen again; 0..2 keep stale values
    kept, _ = select_focus(t, 50)  # latest: [1, 2, 3, 0.5, 4.5, 0.1] -> blocks 5, 3, 0 leave
    assert kept.tolist() == [1, 2, 4]


def test_select_focus_is_linear_time_no_full_sort(monkeypatch):
    t = table_with(np.random.default_rng(0).random(5000))
    for name in ("sort", "argsort", "lexsort"):
        monkeypatch.setattr(np, name, lambda *a, **k: pytest.fail("select_focus must not sort"))
    kept, _ = select_focus(t, 70)
    assert kept.size == 1500
    assert np.isfinite(t.loss).all()  # the table is not modified
    assert t.n_eligible == 5000


def test_select_focus_rejects_bad_percent():
    t = table_with([1.0, 2.0])
    for s in (100, -1, float("nan")):
        with pytest.raises(PlanError, match=r"outside \[0, 100\)"):
            select_focus(t, s)


def test_policy_runs_the_lfr_plan_and_resumes():
    plan = Plan.from_yaml(
        "phases: [{kind: learn}, {kind: focus, epochs: 2, drop_percent: 50}, {kind: review}, "
        "{kind: focus, drop_percent: 70}]"
    )
    n = 100
    rng = np.random.default_rng(3)
    t = IndexTable.new(np.repeat(np.arange(4), 25))
    policy = LFRPolicy(plan)
    sizes, sets = [], {}
    for ep in plan.epochs():
        ids = policy.eligible_for(ep, t)
        assert np.array_equal(ids, t.eligible_ids())
        sizes.append(ids.size)
        sets[ep.index] = ids
        t.update(ids, rng.random(ids.size) * 5, epoch=ep.index)
    assert sizes == plan.blocks_per_epoch(n) == [100, 50, 50, 100, 30]
    assert np.array_equal(sets[1], sets[2])  # decided at the phase's first epoch, kept for its second
    assert policy.last_report.n_kept == 30 and policy.decided_phase == 3
    # resume into the 2nd epoch of the first focus phase: with state, or from the table's saved eligible column
    t2 = IndexTable.new(np.repeat(np.arange(4), 25))
    t2.update(np.arange(n), rng.random(n), epoch=0)
    p1 = LFRPolicy(plan)
    first = p1.eligible_for(plan.epochs()[1], t2)
    t2.update(first, rng.random(first.size), epoch=1)  # new losses must not change the decided set
    state = p1.state_dict()
    p2 = LFRPolicy(plan)
    p2.load_state_dict(state)
    assert np.array_equal(p2.eligible_for(plan.epochs()[2], t2), first)
    assert p2.last_report == p1.last_report
    assert np.array_equal(LFRPolicy(plan).eligible_for(plan.epochs()[2], t2), first)
    with pytest.raises(ValueError, match="not an epoch of plan"):
        policy.eligible_for(Plan.from_recipe("lfr").epochs()[3], t)
    with pytest.raises(ValueError, match="same plan"):
        LFRPolicy(Plan.from_recipe("lfr")).load_state_dict(state)


def test_repeated_focus_reselects_each_time_or_selects_once():
    """reselect (today's lfr plan): each repetition is its own focus phase, decided from the latest perplexities;
    reselect: false: the hardest blocks are selected once and that set trains every repetition."""
    again, once = Plan.from_recipe("lfr"), Plan.from_recipe("lfr", reselect="false")
    assert [(p.kind, p.epochs) for p in again.phases][3:] == [("focus", 1), ("focus", 1)]
    assert [(p.kind, p.epochs) for p in once.phases][3:] == [("focus", 2)]
    assert again.blocks_per_epoch(100) == once.blocks_per_epoch(100) == [100, 50, 100, 30, 30]
    sets = {}
    for name, plan in (("again", again), ("once", once)):
        rng = np.random.default_rng(0)  # the same losses for both plans
        t, policy = IndexTable.new(np.repeat(np.arange(4), 25)), LFRPolicy(plan)
        sets[name] = []
        for ep in plan.epochs():
            ids = policy.eligible_for(ep, t)
            sets[name].append(ids)
            t.update(ids, rng.random(ids.size) * 5, epoch=ep.index)
    assert all(np.array_equal(a, b) for a, b in zip(sets["again"][:4], sets["once"][:4]))  # same up to the 1st rep
    assert np.array_equal(sets["once"][3], sets["once"][4])  # selected once
    assert not np.array_equal(sets["again"][3], sets["again"][4])  # re-decided from the 1st repetition's losses
    with pytest.raises(PlanError, match="reselect: false repeats one focus phase"):
        Plan.from_yaml("phases: [{kind: learn}, {repeat: 2, reselect: false, phases: [{kind: review}, "
                       "{kind: focus, drop_percent: 50}]}]")
    with pytest.raises(PlanError, match="reselect='maybe' must be true or false"):
        Plan.from_recipe("lfr", reselect="maybe")


# ---- block fates ----------------------------------------------------------------------------------------------------


def fate_log(trajectories, domains=None, seed=0):
    """A shuffled curriculum log from {block_id: [ppl per visit]} (one visit per epoch, step grows with epoch)."""
    rows = []
    for b, ppls in trajectories.items():
        for e, p in enumerate(ppls):
            rows.append((b, (domains or {}).get(b, 0), e, 100 * e + b, float(np.log(p))))
    rows = [rows[i] for i in np.random.default_rng(seed).permutation(len(rows))]
    cols = list(zip(*rows))
    return pa.table(
        {
            "block_id": pa.array(cols[0], pa.int64()),
            "domain_id": pa.array(cols[1], pa.int32()),
            "epoch": pa.array(cols[2], pa.int32()),
            "step": pa.array(cols[3], pa.int64()),
            "loss": pa.array(cols[4], pa.float32()),
        }
    )


TRAJECTORIES = {
    0: [5, 4, 3],  # learned
    1: [3, 4, 5],  # unlearned
    2: [5, 3, 4],  # forgotten once
    3: [5, 3, 4, 2, 6],  # forgotten twice: multiple descent
    4: [5],  # single visit
    5: [5, 4, 4.001, 3],  # a tiny wiggle: forgotten when strict, learned with a 1 % tolerance
    6: [3, 5, 2],  # rose, then fell below the start: never rose after a fall -> learned
    7: [3, 3],  # flat: did not end lower -> unlearned
    8: [6, 2, 2, 7],  # fall, flat, rise: still one fall -> rise turn
}


def test_block_fates_on_hand_made_trajectories():
    log = fate_log(TRAJECTORIES, domains={b: b % 2 for b in TRAJECTORIES})
    f = block_fates(log).to_pydict()
    assert f["block_id"] == list(range(9))
    assert f["fate"] == [
        "learned", "unlearned", "forgotten", "forgotten", "unseen_or_once", "forgotten", "learned", "unlearned",
        "forgotten",
    ]  # fmt: skip
    assert f["times_forgotten"] == [0, 0, 1, 2, 0, 1, 0, 0, 1]
    assert f["visits"] == [3, 3, 3, 5, 1, 4, 3, 2, 4]
    assert np.allclose(f["first_ppl"], [5, 3, 5, 5, 5, 5, 3, 3, 6], rtol=1e-6)
    assert np.allclose(f["last_ppl"], [3, 5, 4, 6, 5, 3, 2, 3, 7], rtol=1e-6)
    assert f["domain_id"] == [b % 2 for b in range(9)]
    tol = block_fates(log, rel_tol=0.01).to_pydict()
    assert tol["fate"][5] == "learned" and tol["times_forgotten"][5] == 0
    assert tol["fate"][:5] == f["fate"][:5]


def test_block_fates_ignores_nonfinite_visits():
    log = fate_log({0: [5, 3, 4], 1: [2, 1]})
    loss = log.column("loss").to_numpy().copy()
    loss[(log.column("block_id").to_numpy() == 1) & (log.column("epoch").to_numpy() == 1)] = np.nan
    f = block_fates(log.set_column(4, "loss", pa.array(loss))).to_pydict()
    assert f["fate"] == ["forgotten", "unseen_or_once"] and f["visits"] == [3, 1]


def test_summarize_fates_fractions():
    f = block_fates(fate_log(TRAJECTORIES, domains={b: b % 2 for b in TRAJECTORIES}))
    s = summarize_fates(f)
    assert s["blocks"] == 9
    assert s["counts"] == {"unseen_or_once": 1, "learned": 2, "unlearned": 2, "forgotten": 4}
    assert s["fractions"]["forgotten"] == pytest.approx(4 / 9)
    assert sum(s["fractions"].values()) == pytest.approx(1.0)
    assert s["forgotten_multiple"] == 1 and s["forgotten_multiple_share"] == pytest.approx(1 / 4)
    even, odd = s["per_domain"][0], s["per_domain"][1]  # even: 0, 2, 4, 6, 8; odd: 1, 3, 5, 7
    assert even["counts"] == {"unseen_or_once": 1, "learned": 2, "unlearned": 0, "forgotten": 2}
    assert odd["fractions"] == {"unseen_or_once": 0.0, "learned": 0.0, "unlearned": 0.5, "forgotten": 0.5}
    assert odd["forgotten_multiple_share"] == pytest.approx(0.5)
    plain = f.set_column(5, "fate", f.column("fate").cast(pa.string()))  # plain strings work too
    assert summarize_fates(plain)["counts"] == s["counts"]
    assert set(FATES) == set(s["counts"])


def test_core_imports_no_torch_or_transformers():
    import subprocess

    code = (
        "import sys, curricula.methods.lfr; "
        "bad = [m for m in ('torch', 'transformers', 'datasets', 'accelerate') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_other_methods_recipes_are_not_plans():
    from curricula.methods.lfr.plan import Plan, PlanError

    with pytest.raises(PlanError, match=r"recipe 'doremi' is a doremi recipe, not a curriculum plan; run it with `curricula doremi"):
        Plan.from_recipe("doremi")
    with pytest.raises(PlanError, match="continual recipe"):
        Plan.from_recipe("continual_replay")
