"""ADO's rule (``curricula/methods/ado/rule.py``) against the transcription of the official selector
(``tests/fixtures/official/ado_official.py``: ``AdoSelector`` + the loader glue) on synthetic per-domain losses for a
few hundred steps. Three comparisons, as the bounded history asks: the update rule given the same fitted parameters,
the fit on the same points, the smoothed points themselves; then end to end, and what the bounded history and the
background fit change."""

import json
import time

import numpy as np
import pytest

from curricula.methods.ado.rule import ADORule, SmoothedLossHistory, fit_scaling_law, scaling_law


FLOOR = np.array([2.0, 2.4, 1.8, 2.8])
SCALE = np.array([30.0, 50.0, 20.0, 80.0])
ALPHA = np.array([0.30, 0.35, 0.25, 0.40])
PRIOR = np.array([0.4, 0.3, 0.2, 0.1])
K, BATCH = 4, 32


def open_loop_stream(steps, seed=5, sigma=0.05, k=K):
    """Per step: every sequence's domain (uniform, independent of the method, so both implementations see the same
    inputs) and its loss (a power law in the tokens its domain has been trained on, plus noise)."""
    rng = np.random.default_rng(seed)
    tokens = np.zeros(k)
    out = []
    for _ in range(steps):
        ids = rng.choice(k, BATCH, p=np.full(k, 1 / k))
        mean = FLOOR[:k] + SCALE[:k] * (tokens + 1024.0) ** -ALPHA[:k]
        out.append((ids, mean[ids] + sigma * rng.standard_normal(BATCH)))
        tokens += 1024 * np.bincount(ids, minlength=k)
    return out


def aggregates(ids, losses, k=K):
    """What our rule is given: per-domain counts, per-domain mean loss (ADO 149's np.mean), the batch mean (ADO 144)."""
    counts = np.bincount(ids, minlength=k)
    mean = np.array([np.mean(losses[np.where(ids == i)]) if counts[i] else 0.0 for i in range(k)])
    return counts, mean, np.mean(losses).item(), int(counts.sum())


def subgrid_fit(off, starts=8):
    """The official transcription's L-BFGS from a subgrid of its starts (cheap: the update-rule comparison only needs
    the same parameters on both sides)."""
    grid = off.init_grid()
    step = {64: 2, 8: 4}[starts]
    keep = np.all([np.isin(grid[:, j], np.unique(grid[:, j])[::step]) for j in range(3)], axis=0)

    def fit(D, L):
        logD, logL = np.log(np.asarray(D, np.float64)), np.log(np.asarray(L, np.float64))
        X, f = off._lbfgs_numpy_batched(grid[keep], logD, logL)
        return X[np.nanargmin(f)]

    return fit


def test_update_rule_given_the_same_fits_is_the_official_one_bit_for_bit(load_official):
    off = load_official("ado_official")
    stream = open_loop_stream(300)
    official = off.ADOOfficial(PRIOR, ignore_steps=10, start_step=100, update_interval=50, fit_fn=subgrid_fit(off))
    traj_official, fitted = [], {}
    for itr, (ids, losses) in enumerate(stream):
        traj_official.append(official.step(itr, task_ids=ids, losses=losses))
        if itr >= 100 and itr % 50 == 0:
            fitted[itr] = official.current_params.copy()
    queue = [fitted[i] for i in sorted(fitted)]
    ours = ADORule(PRIOR, ignore_steps=10, start_step=100, update_interval=50,
                   fitter=lambda x, Y, w, stop: queue.pop(0))  # the official fits, injected
    traj = [ours.observe(itr, *aggregates(ids, losses)) for itr, (ids, losses) in enumerate(stream)]
    worst = float(np.max(np.abs(np.array(traj) - np.array(traj_official))))
    assert worst == 0.0, f"ADO's distribution differs from the official transcription: max abs difference {worst!r}"
    assert not queue and len(fitted) == 4  # refits at itr 100, 150, 200, 250
    for ours_v, off_v in ((ours.p_avg, official.p_avg), (ours.p_history, official.p_history),
                          (ours.last_dist, official.last_dist_K)):
        np.testing.assert_array_equal(ours_v, off_v)
    assert np.abs(np.array(traj[-1]) - PRIOR).max() > 1e-3  # the policy moved away from the prior


@pytest.mark.parametrize("ignore", [10, 60])
def test_fit_points_are_the_official_smoothed_rows_bit_for_bit(ignore, load_official):
    off = load_official("ado_official")
    official = off.ADOOfficial(PRIOR, ignore_steps=ignore, start_step=10**9, update_interval=10**9)
    history = SmoothedLossHistory(K, ignore, window=101, order=3, stride=10, max_points=1000)
    worst, checked = 0.0, 0
    for itr, (ids, losses) in enumerate(open_loop_stream(400, seed=9)):
        official.step(itr, task_ids=ids, losses=losses)
        history.push(int(np.cumsum(official.task_cnt_TxK, 0)[-1, 0]), official.task_loss_TxK[-1])
        if itr >= 100 and itr % 23 == 0:  # what a refit at this step would fit (ADO 218-224)
            x, y, weight = history.fit_points()
            x_off = np.cumsum(official.task_cnt_TxK, 0)[ignore::10].T[0]
            y_off = off.savgol_filter_interp(official.task_loss_TxK.T, 101, 3, axis=-1)[:, ignore::10]
            np.testing.assert_array_equal(x, x_off)
            assert y.shape == y_off.shape and weight == 1.0
            worst = max(worst, float(np.max(np.abs(y - y_off))))
            checked += 1
    assert checked == 13
    assert worst == 0.0, f"smoothed fit points differ from the official savgol rows: max abs difference {worst!r}"


def test_fit_on_the_same_points_is_the_official_fit_bit_for_bit(load_official):
    off = load_official("ado_official")
    n = np.arange(1, 31) * 320.0 + 32_000
    rng = np.random.default_rng(3)
    worst = 0.0
    for d in range(2):
        y = FLOOR[d] + SCALE[d] * n ** -ALPHA[d] + 1e-3 * rng.standard_normal(n.size)
        ours, official = fit_scaling_law(n, y), off.fit_scaling_law_numpy(n, y)  # 512 starts each
        worst = max(worst, float(np.max(np.abs(ours - official))))
    assert worst == 0.0, f"fitted (a, e, alpha) differ from the official transcription's: max abs difference {worst!r}"


def test_end_to_end_with_the_official_fitter_matches_the_official_selector(load_official):
    off = load_official("ado_official")
    stream = open_loop_stream(220, seed=11, k=3)
    prior = np.array([0.5, 0.3, 0.2])
    official = off.ADOOfficial(prior, ignore_steps=10, start_step=100, update_interval=60)  # refits at 120, 180
    ours = ADORule(prior, ignore_steps=10, start_step=100, update_interval=60)  # 512 starts, synchronous
    worst = 0.0
    for itr, (ids, losses) in enumerate(stream):
        p_official = official.step(itr, task_ids=ids, losses=losses)
        worst = max(worst, float(np.max(np.abs(ours.observe(itr, *aggregates(ids, losses, 3)) - p_official))))
    np.testing.assert_array_equal(ours.params, official.current_params)
    assert worst == 0.0, f"end to end, ADO differs from the official transcription: max abs difference {worst!r}"


def test_bounded_history_keeps_evenly_spaced_weighted_points_and_fits_like_the_full_history(load_official):
    off = load_official("ado_official")
    stream = open_loop_stream(1300, seed=2, sigma=0.02, k=2)
    official = off.ADOOfficial(PRIOR[:2] / PRIOR[:2].sum(), ignore_steps=100, start_step=10**9, update_interval=10**9)
    small = SmoothedLossHistory(2, 100, max_points=16)
    sizes = set()
    for itr, (ids, losses) in enumerate(stream):
        official.step(itr, task_ids=ids, losses=losses)
        small.push(int(np.cumsum(official.task_cnt_TxK, 0)[-1, 0]), official.task_loss_TxK[-1])
        sizes.add(sum(np.asarray(v).nbytes for v in small.state_dict().values() if isinstance(v, np.ndarray)))
    x, y, weight = small.fit_points()
    assert small.stride == 80 and weight == 8.0 and 8 <= small.n_points <= 16  # 120 official points -> 16 -> 8
    rows = small.point_rows[: small.n_points]
    assert np.all((rows - 100) % 80 == 0) and np.all(np.diff(rows) == 80)  # evenly spaced, the official grid's rows
    x_all = np.cumsum(official.task_cnt_TxK, 0)[100::10].T[0]
    y_all = off.savgol_filter_interp(official.task_loss_TxK.T, 101, 3, axis=-1)[:, 100::10]
    assert set(x.tolist()) <= set(x_all.tolist())  # a subset of the official points (same values)
    bound = 101 * (2 * 8 + 8) + 16 * (8 + 8 + 2 * 8)  # the ring (loss rows, x) + max_points (row, x, y per domain)
    assert max(sizes) <= bound  # flat: bounded by max_points, however long the history
    n_now = float(x_all[-1])
    for d in range(2):  # the weighted fit on <= 16 points predicts the loss curve as the fit on all 120 points
        full = off.fit_scaling_law_numpy(x_all, y_all[d])
        bounded = fit_scaling_law(x, y[d], weight=weight, starts=64)
        for n in (x_all[0], n_now, 2 * n_now):
            gap = abs(float(scaling_law(bounded, n)) - float(scaling_law(full, n)))
            assert gap < 2e-3, f"domain {d}: bounded-history fit predicts L({n:.0f}) {gap:.2e} off the full fit"


def test_background_fit_gives_the_same_parameters_applied_fit_lag_steps_later_and_resumes_exactly():
    stream = open_loop_stream(260, seed=4)
    kw = dict(ignore_steps=10, start_step=100, update_interval=50, starts=8)
    sync = ADORule(PRIOR, **kw)
    lagged = ADORule(PRIOR, fit_lag=7, **kw)
    resumed, traj_lagged, traj_resumed = None, [], []
    for itr, (ids, losses) in enumerate(stream):
        agg = aggregates(ids, losses)
        sync.observe(itr, *agg)
        traj_lagged.append(lagged.observe(itr, *agg))
        if itr == 153:  # a refit started at 150 is running: the checkpoint holds its points
            state = json.loads(json.dumps({k: v for k, v in lagged.state_dict().items()
                                           if not isinstance(v, np.ndarray)}))
            arrays = {k: v.copy() for k, v in lagged.state_dict().items() if isinstance(v, np.ndarray)}
            assert state["pending_start"] == 150 and state["pending_apply_at"] == 157 and "pending_x" in arrays
            resumed = ADORule(PRIOR, fit_lag=7, **kw)
            resumed.load_state_dict({**state, **arrays})
        elif resumed is not None:
            traj_resumed.append(resumed.observe(itr, *agg))
    applied = [(e["itr"], e["started"]) for e in lagged.events]
    assert applied == [(107, 100), (157, 150), (207, 200), (257, 250)]
    for e_sync, e_lag in zip(sync.events, lagged.events):  # the same points: the same parameters
        assert e_sync["params"] == e_lag["params"] and e_sync["itr"] == e_lag["started"]
    np.testing.assert_array_equal(np.array(traj_resumed), np.array(traj_lagged[154:]))
    np.testing.assert_array_equal(np.array(traj_lagged[:107]), np.tile(lagged.prior, (107, 1)))  # nothing fitted yet


def test_a_cancelled_background_fit_stops():
    rule = ADORule(PRIOR, ignore_steps=0, start_step=100, update_interval=50, fit_lag=10)  # 512 starts: seconds
    for itr, (ids, losses) in enumerate(open_loop_stream(101)):
        rule.observe(itr, *aggregates(ids, losses))
    job = rule._job
    assert job is not None and rule.pending["apply_at"] == 110
    t0 = time.perf_counter()
    rule.close()
    job.thread.join(timeout=30)
    assert not job.thread.is_alive() and time.perf_counter() - t0 < 10
