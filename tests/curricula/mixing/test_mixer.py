"""DomainMixer: exact per-batch domain counts, per-domain epoch streams, within-batch shuffle, exact resume, bad input.
Pure numpy; fast."""

import json

import numpy as np
import pytest

from curricula.mixing.mixer import SHUFFLE_KEY, DomainMixer, MixingError, check_weights


def disjoint_pools(sizes):
    """Pool d holds ids d*1000 .. d*1000+size-1, so a block id tells its domain (id // 1000)."""
    return [np.arange(d * 1000, d * 1000 + s, dtype=np.int64) for d, s in enumerate(sizes)]


def domain_counts(batches, k):
    """[n, k] blocks per domain in each batch (pools from disjoint_pools)."""
    d = batches // 1000
    return np.stack([(d == i).sum(axis=1) for i in range(k)], axis=1)


# ---- counts -----------------------------------------------------------------------------------------------------


def test_counts_follow_the_weights_exactly():
    w = np.array([0.5, 0.3, 0.2])
    m = DomainMixer(disjoint_pools([50, 40, 30]), w, batch_size=7, seed=3)
    peeked = []
    batches = []
    for _ in range(100):
        peeked.append(m.counts())
        assert np.array_equal(m.counts(), peeked[-1])  # counts() does not advance
        batches.append(m.next_batch())
    c = domain_counts(np.stack(batches), 3)
    assert np.array_equal(c, np.stack(peeked))  # counts() announced exactly what next_batch() delivered
    assert (c.sum(axis=1) == 7).all()
    q = 7 * w  # 3.5, 2.1, 1.4
    assert ((c == np.floor(q)) | (c == np.ceil(q))).all()
    cum = np.cumsum(c, axis=0)
    ideal = np.arange(1, 101)[:, None] * q
    assert np.abs(cum - ideal).max() < 1
    assert np.array_equal(cum[-1], [350, 210, 140])  # 100 batches: exactly the quota


def test_integral_quotas_give_identical_batches():
    m = DomainMixer(disjoint_pools([20, 20]), [0.75, 0.25], batch_size=8, seed=0)
    assert (domain_counts(m.batches(10), 2) == [6, 2]).all()


def test_counts_never_leave_floor_ceil_and_stay_within_one_of_the_ideal():
    # The literal largest-remainder carry (r += q; c = floor(r); leftovers to the largest fractional parts) gives
    # counts (1, -1, 1) at batch 51 for these weights; the deadline rule must not.
    cases = [(np.array([0.05, 0.05, 0.9]), 1)]
    rng = np.random.default_rng(7)
    for _ in range(60):
        k = int(rng.integers(2, 12))
        w = rng.dirichlet(np.full(k, rng.choice([0.2, 1.0, 5.0])))
        if rng.random() < 0.3:
            w[rng.integers(k)] = 0
            w /= w.sum()
        cases.append((w, int(rng.choice([1, 2, 3, 7, 64, 512]))))
    for w, b in cases:
        m = DomainMixer([np.arange(5)] * len(w), w, batch_size=b, seed=0)
        q = b * w
        cum = np.zeros(len(w))
        for i in range(1, 301):
            c = m.counts()
            m.skip(1)
            assert c.sum() == b and (c >= 0).all()
            assert ((c == np.floor(q)) | (c == np.ceil(q))).all(), (w, b, i, c)
            assert (c[w == 0] == 0).all()
            cum += c
            assert np.abs(cum - i * q).max() < 1 + 1e-9, (w, b, i)


def test_zero_weight_domain_is_never_drawn_and_may_have_an_empty_pool():
    pools = disjoint_pools([10, 0, 10])
    m = DomainMixer(pools, [0.5, 0.0, 0.5], batch_size=5, seed=1)
    c = domain_counts(m.batches(40), 3)
    assert (c[:, 1] == 0).all() and (c.sum(axis=1) == 5).all()
    m = DomainMixer(disjoint_pools([10, 10, 10]), [0.0, 0.9, 0.1], batch_size=3, seed=1)
    assert (m.batches(100) // 1000 != 0).all()


# ---- streams and order ------------------------------------------------------------------------------------------


def expected_stream(pool, seed, d, n_epochs):
    return np.concatenate([np.random.default_rng([seed, d, e]).permutation(pool) for e in range(n_epochs)])


def test_batches_are_exactly_the_documented_streams_and_shuffle():
    # pools of 5 and 3 with 3 and 2 blocks per batch: both domains change epoch in the middle of batches
    pools = disjoint_pools([5, 3])
    seed, n = 11, 30
    m = DomainMixer(pools, [0.6, 0.4], batch_size=5, seed=seed)
    got = m.batches(n)
    streams = [expected_stream(pools[d], seed, d, 25) for d in range(2)]
    pos = [0, 0]
    for i in range(n):
        in_domain_order = []
        for d, take in enumerate((3, 2)):
            in_domain_order.append(streams[d][pos[d] : pos[d] + take])
            pos[d] += take
        want = np.random.default_rng([seed, SHUFFLE_KEY, i]).permutation(np.concatenate(in_domain_order))
        assert np.array_equal(got[i], want), i
    # each pool element exactly once per domain epoch: 90 draws of domain 0 = 18 epochs, 60 of domain 1 = 20 epochs
    for d, (size, drawn) in enumerate(((5, 90), (3, 60))):
        flat = streams[d][:drawn].reshape(-1, size)
        assert (np.sort(flat, axis=1) == pools[d]).all()
    assert np.array_equal(np.sort(got.ravel()), np.sort(np.concatenate([streams[0][:90], streams[1][:60]])))


def test_batch_order_mixes_domains():
    m = DomainMixer(disjoint_pools([1000, 1000]), [0.5, 0.5], batch_size=64, seed=0)
    b = m.batches(20) // 1000
    assert not all(np.array_equal(row, np.sort(row)) for row in b)  # not left in domain order
    assert (b[:, :32].sum(axis=1) > 0).all()  # the first half of each batch already holds domain 1


def test_same_seed_same_stream_other_seed_other_stream():
    pools = disjoint_pools([37, 23, 11])
    w = [0.5, 0.3, 0.2]
    a = DomainMixer(pools, w, 16, seed=5).batches(50)
    assert np.array_equal(a, DomainMixer(pools, w, 16, seed=5).batches(50))
    assert not np.array_equal(a, DomainMixer(pools, w, 16, seed=6).batches(50))
    one_by_one = DomainMixer(pools, w, 16, seed=5)
    assert np.array_equal(a, np.stack([one_by_one.next_batch() for _ in range(50)]))


# ---- resume -----------------------------------------------------------------------------------------------------


def test_state_dict_resume_mid_epoch_gives_the_identical_remaining_stream():
    pools = disjoint_pools([37, 23, 11])
    w = [0.45, 0.35, 0.2]
    ref = DomainMixer(pools, w, 16, seed=9)
    full = ref.batches(120)
    m = DomainMixer(pools, w, 16, seed=9)
    m.batches(47)
    state = json.loads(json.dumps(m.state_dict()))
    assert any(p > 0 for p in state["position"]) and state["batch_index"] == 47
    resumed = DomainMixer(pools, w, 16, seed=9)
    resumed.load_state_dict(state)
    assert np.array_equal(resumed.batches(73), full[47:])
    assert resumed.state_dict() == ref.state_dict()


def test_skip_equals_drawing():
    pools = disjoint_pools([37, 23, 11])
    w = [0.45, 0.35, 0.2]
    drawn, skipped = DomainMixer(pools, w, 16, seed=2), DomainMixer(pools, w, 16, seed=2)
    drawn.batches(61)
    skipped.skip(61)
    assert skipped.state_dict() == drawn.state_dict()
    assert np.array_equal(skipped.batches(30), drawn.batches(30))
    skipped.skip(0)
    assert skipped.batches(0).shape == (0, 16)


def test_resume_refuses_a_differently_configured_mixer():
    pools = disjoint_pools([37, 23])
    m = DomainMixer(pools, [0.5, 0.5], 8, seed=1)
    m.skip(3)
    state = m.state_dict()
    with pytest.raises(MixingError, match=r"different seed .*resume with the same seed"):
        DomainMixer(pools, [0.5, 0.5], 8, seed=2).load_state_dict(state)
    with pytest.raises(MixingError, match=r"different weights \(\[0.5, 0.5\], this mixer has \[0.6, 0.4\]\)"):
        DomainMixer(pools, [0.6, 0.4], 8, seed=1).load_state_dict(state)
    with pytest.raises(MixingError, match=r"different batch size"):
        DomainMixer(pools, [0.5, 0.5], 16, seed=1).load_state_dict(state)
    other = [pools[0], pools[1] + 1]  # same sizes, other ids
    with pytest.raises(MixingError, match=r"different pools \(block ids\)"):
        DomainMixer(other, [0.5, 0.5], 8, seed=1).load_state_dict(state)


def test_skip_is_fast():
    import time

    m = DomainMixer(disjoint_pools([500] * 8), np.full(8, 1 / 8) * [1.3, 0.7, 1, 1, 1.1, 0.9, 1, 1], 512, seed=0)
    t = time.perf_counter()
    m.skip(200_000)
    assert time.perf_counter() - t < 5  # ~0.5 s here (1M batches ~3.7 s); no per-block work


# ---- bad input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "weights, names, message",
    [
        ([0.5, 0.6], None, r"weights sum to 1.1, not 1 \(tolerance 1e-06\); normalise them first, e.g. w = w / w.sum"),
        ([1.2, -0.2], ["web", "code"], r"weight of domain 1 \('code'\) is negative \(-0.2\); weights must be >= 0"),
        ([0.5, float("nan")], None, r"weight of domain 1 is nan; every weight must be a finite number"),
        ([0.5, 0.5], ["a", "b", "c"], r"got 2 weights for 3 domains \['a', 'b', 'c'\]; give exactly one weight"),
        ([0.0, 0.0], None, r"all weights are zero; give at least one domain a positive weight"),
        ([[0.5, 0.5]], None, r"non-empty 1-D list"),
    ],
)
def test_check_weights_errors(weights, names, message):
    with pytest.raises(MixingError, match=message):
        check_weights(weights, names)


def test_check_weights_accepts_rounding_noise():
    w = check_weights([1 / 3, 1 / 3, 1 / 3 + 5e-7])
    assert w.dtype == np.float64


def test_mixer_bad_input():
    with pytest.raises(MixingError, match=r"domain 1 \('replay'\) has weight 0.05 but an empty pool; give it blocks"):
        DomainMixer([np.arange(10), np.arange(0)], [0.95, 0.05], 8, seed=0, names=["new", "replay"])
    with pytest.raises(MixingError, match=r"got 3 pools for 2 weights"):
        DomainMixer(disjoint_pools([3, 3, 3]), [0.5, 0.5], 8, seed=0)
    with pytest.raises(MixingError, match=r"batch_size=0 must be an integer >= 1"):
        DomainMixer(disjoint_pools([3, 3]), [0.5, 0.5], 0, seed=0)
    with pytest.raises(MixingError, match=r"pool of domain 0 must be a 1-D integer array"):
        DomainMixer([np.arange(3.0), np.arange(3)], [0.5, 0.5], 4, seed=0)
    with pytest.raises(MixingError, match=r"weights sum to"):
        DomainMixer(disjoint_pools([3, 3]), [0.5, 0.4], 4, seed=0)
