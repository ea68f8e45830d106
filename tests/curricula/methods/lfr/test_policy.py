"""LFR's focus selection and policy (``curricula/methods/lfr/policy.py``): exactly the lowest perplexities leave (ties
by block id, non-finite blocks kept), in linear time; the plan run epoch by epoch, resumed, reselected or not. Fast
(no torch, no models)."""

import numpy as np
import pytest

from curricula.methods.lfr import IndexTable, LFRPolicy, Plan, PlanError, n_dropped, select_focus


def reference_kept(ppl, loss, s):
    """Full-sort reference: rank finite blocks by (ppl, block_id), drop the first floor(n*s/100)."""
    n = ppl.size
    finite = np.flatnonzero(np.isfinite(loss))
    ranked = finite[np.lexsort((finite, ppl[finite]))]
    dropped = ranked[: min(n_dropped(n, s), finite.size)]
    return np.setdiff1d(np.arange(n), dropped)


@pytest.mark.parametrize("s", [0, 12.5, 33.3, 50, 70, 99.9])
def test_select_focus_drops_exactly_the_lowest(s, table_with):
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
def test_select_focus_large_table_path_is_exact(monkeypatch, sample, nonfinite, table_with):
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


def test_select_focus_tie_rule_lower_block_id_leaves_first(table_with):
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


def test_select_focus_uses_latest_perplexity_of_all_blocks_including_stale(table_with):
    t = table_with([1, 2, 3, 4, 5, 6])  # learn, epoch 0
    kept, _ = select_focus(t, 50)
    assert kept.tolist() == [3, 4, 5]
    t.update(kept, [0.5, 4.5, 0.1], epoch=1)  # only the focus set is seen again; 0..2 keep stale values
    kept, _ = select_focus(t, 50)  # latest: [1, 2, 3, 0.5, 4.5, 0.1] -> blocks 5, 3, 0 leave
    assert kept.tolist() == [1, 2, 4]


def test_select_focus_is_linear_time_no_full_sort(monkeypatch, table_with):
    t = table_with(np.random.default_rng(0).random(5000))
    for name in ("sort", "argsort", "lexsort"):
        monkeypatch.setattr(np, name, lambda *a, **k: pytest.fail("select_focus must not sort"))
    kept, _ = select_focus(t, 70)
    assert kept.size == 1500
    assert np.isfinite(t.loss).all()  # the table is not modified
    assert t.n_eligible == 5000


def test_select_focus_rejects_bad_percent(table_with):
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
