"""ODM's rule (``curricula/methods/odm/rule.py``) against the transcription of the official code
(``tests/fixtures/official/odm_official.py``: ``SmoothedMeanWeightUpdater.group_update`` under its wrapper), on
synthetic per-domain losses for a few hundred steps: the same arithmetic, so the weights must be bit-identical."""

import json

import numpy as np
import pytest

from curricula.methods.odm.rule import ODMRule


K = 5
NAMES = [f"d{k}" for k in range(K)]
PRIOR = np.array([0.35, 0.25, 0.20, 0.12, 0.08])
FLOOR = np.array([2.0, 2.4, 1.8, 2.8, 2.2])
SCALE = np.array([30.0, 50.0, 20.0, 80.0, 40.0])
ALPHA = np.array([0.30, 0.35, 0.25, 0.40, 0.32])


def synthetic_stream(steps, rng, probabilities, microbatches=8, mb_size=4, sigma=0.05):
    """The official sampler's protocol (one domain per micro-batch, TR 1475-1486) over a world whose domain losses
    fall as power laws in the tokens trained: per step, yields (micro-batch counts, summed micro-batch mean losses)
    and expects the next step's probabilities back (``probabilities()`` is read before every draw)."""
    tokens = np.zeros(K)
    for _ in range(steps):
        domains = rng.choice(K, microbatches, p=probabilities())
        counts, sums = np.zeros(K, dtype=np.int64), np.zeros(K)
        for d in domains:
            mean = FLOOR[d] + SCALE[d] * (tokens[d] + 1024.0) ** -ALPHA[d]
            counts[d] += 1
            sums[d] += float(np.mean(mean + sigma * rng.standard_normal(mb_size)))
        tokens += 1024 * mb_size * np.bincount(domains, minlength=K)
        yield counts, sums


@pytest.mark.parametrize("smoothing, warmup, frequency", [(0.5, 20, 1), (0.9, 0, 1), (0.5, 10, 3)])
def test_odm_rule_is_the_official_group_update_bit_for_bit(smoothing, warmup, frequency, load_official):
    off = load_official("odm_official")
    official = off.SmoothedMeanOfficial(NAMES, list(PRIOR), smoothing_factor=smoothing, warmup_steps=warmup,
                                        update_frequency=frequency)
    ours = ODMRule(PRIOR, smoothing=smoothing, warmup_steps=warmup, update_frequency=frequency)
    rng = np.random.default_rng(1234)
    worst, updates, absent = 0.0, 0, 0
    # closed loop: each step's micro-batch domains are drawn from the official probabilities
    for t, (counts, sums) in enumerate(synthetic_stream(300, rng, official.probabilities), start=1):
        present = counts > 0
        absent += int((~present).sum())
        p_official = official.step(t, {NAMES[d]: int(counts[d]) for d in range(K) if counts[d]},
                                   {NAMES[d]: float(sums[d]) for d in range(K) if counts[d]})
        rewards = np.where(present, sums / np.maximum(counts, 1), np.nan)  # TR 1262: sum / count per domain
        p_ours = ours.observe(t, rewards, present)
        worst = max(worst, float(np.max(np.abs(p_ours - p_official))))
        np.testing.assert_array_equal(ours.reward, list(official._estimated_reward.values()))
        updates += official.update_scheduler.requires_update(t)
    assert worst == 0.0, f"ODM weights differ from the official transcription: max abs difference {worst!r}"
    assert ours.updates == updates >= 90 and absent > 0  # the stream updated often and left domains out
    assert ours.eps == official.eps and ours.prev_eps == official.prev_eps


def test_odm_rule_follows_its_closed_form_and_starts_from_the_initial_weights():
    rule = ODMRule(PRIOR, smoothing=0.5, warmup_steps=3)
    for t in (1, 2, 3):  # the warm-up: the initial weights, nothing learned
        np.testing.assert_array_equal(rule.observe(t, np.full(K, 3.0), np.ones(K, bool)), PRIOR / PRIOR.sum())
    assert rule.updates == 0 and rule.reward == [0.0] * K
    present = np.array([True, True, False, True, False])
    p = rule.observe(4, np.array([2.0, 3.0, np.nan, 1.0, np.nan]), present)
    eps = min(1 / K, np.sqrt(np.log(K) / (K * 4)))
    R = np.where(present, 0.5 * np.exp([2.0, 3.0, 0, 1.0, 0]), 0.0)
    np.testing.assert_allclose(p, (1 - K * eps) * R / R.sum() + eps, rtol=0, atol=1e-15)
    assert p[2] == p[4] == pytest.approx(eps, rel=1e-12), "a domain never seen keeps R = 0 and gets eps_t"


def test_odm_rule_state_round_trips_through_json_and_numpy_exactly():
    rng = np.random.default_rng(0)
    a = ODMRule(PRIOR, smoothing=0.5, warmup_steps=5)
    stream = [(rng.random(K) * 3 + 2, rng.random(K) < 0.7) for _ in range(80)]
    out_a, out_b, b = [], [], None
    for t, (r, present) in enumerate(stream, start=1):
        out_a.append(a.observe(t, r, present))
        if t == 40:
            state = a.state_dict()
            doc = json.loads(json.dumps({k: v for k, v in state.items() if not isinstance(v, np.ndarray)}))
            b = ODMRule(PRIOR, smoothing=0.5, warmup_steps=5)
            b.load_state_dict({**doc, **{k: v.copy() for k, v in state.items() if isinstance(v, np.ndarray)}})
        elif b is not None:
            out_b.append(b.observe(t, r, present))
    np.testing.assert_array_equal(np.array(out_b), np.array(out_a[40:]))
