"""Aioli's rule (``curricula/methods/aioli/rule.py``) against the transcription of the official trainer
(``tests/fixtures/official/aioli_official.py``: ``AioliTrainer.train`` + ``learn_params_subroutine`` as a state
machine), on synthetic per-domain held-out losses for a few hundred steps: the official run is recorded (every
measurement and sweep order) and replayed through our rule, which must give bit-identical matrices and proportions."""

import json

import numpy as np
import pytest

from curricula.methods.aioli.rule import AioliRule, lp_mixture


K = 5
FLOOR = np.array([2.0, 2.4, 1.8, 2.8, 2.2])
SCALE = np.array([30.0, 50.0, 20.0, 80.0, 40.0])
ALPHA = np.array([0.30, 0.35, 0.25, 0.40, 0.32])
TRANSFER = np.eye(K) + 0.1 * (np.ones((K, K)) - np.eye(K))  # training on one domain helps the others a little


def run_official(off, steps=300, **hp):
    """The official trainer on a synthetic world (the transcription's demo protocol): validation loss of domain k is
    ``FLOOR + SCALE (TRANSFER @ tokens + 1024)^-ALPHA``, noise-free; LearnParams batches from the official
    ``lp_batches`` (all of one domain when one_hot_factor is 1), mixed-phase batches from ``mixed_phase_batches``.
    Returns the rounds as recorded: per round
    (loss_0, sweep order, the loss after each segment, the official A as kept in all_graphs, the proportions)."""
    rng = np.random.default_rng(1234)
    tokens = np.zeros(K)
    al = off.AioliOfficial(k=K, total_steps=steps, batch_size=8, perm_rng=np.random.RandomState(0), **hp)
    rounds = []

    def evaluate():
        loss = FLOOR + SCALE * (TRANSFER @ tokens + 1024.0) ** -ALPHA
        rounds[-1]["losses"].append(loss.copy())
        return loss

    def train_lp(onehot_idx, proportions):
        if rounds[-1]["order"] is None:
            rounds[-1]["order"] = al.mixture_order.copy()
        if al.one_hot_factor == 1:  # the iid loader with a one-hot p (AT 129): every batch from that domain
            tokens[onehot_idx] += 1024 * al.batch_size * al.lp_steps
            return
        for counts in off.lp_batches(proportions, al.batch_size, al.lp_steps, rng):
            tokens[:] += 1024 * counts

    for _ in range(al.num_iterations):
        start = al.counter
        rounds.append({"losses": [], "order": None})
        p = al.run_round(evaluate, train_lp)
        rounds[-1].update(graph=al.all_graphs[-1], weights=p)
        batches = off.mixed_phase_batches(p, al.batch_size, 0)
        for _ in range(al.mixed_phase_steps(start)):
            tokens[:] += 1024 * np.bincount(next(batches), minlength=K)
            al.counter += 1
        if al.counter == al.total_steps:
            break
    return rounds


HYPER = {
    "paper-like": dict(eta=0.5, update_steps=50, lp_rounds=2, lp_steps=2, one_hot_factor=0.5, ema=0.1,
                       aioli_normalize_A=True),
    "cumulative": dict(eta=0.5, update_steps=50, lp_rounds=2, lp_steps=2, one_hot_factor=0.5, ema=None,
                       aioli_normalize_A=True),
    "diagonal": dict(eta=1.0, update_steps=60, lp_rounds=1, lp_steps=3, one_hot_factor=0.75, ema=0.5,
                     aioli_normalize_A=True, aioli_diagonal=True),
    "one-hot, raw A": dict(eta=0.2, update_steps=50, lp_rounds=3, lp_steps=1, one_hot_factor=1.0, ema=None),
}


@pytest.mark.parametrize("name", list(HYPER))
def test_aioli_rule_replays_the_official_rounds_bit_for_bit(name, load_official):
    off = load_official("aioli_official")
    hp = HYPER[name]
    rounds = run_official(off, **hp)
    rule = AioliRule(K, hp["eta"], lp_rounds=hp["lp_rounds"], one_hot_factor=hp["one_hot_factor"], ema=hp["ema"],
                     normalize_A=hp.get("aioli_normalize_A", False), diagonal=hp.get("aioli_diagonal", False))
    worst_graph = worst_p = 0.0
    for r in rounds:
        rule.begin_round(r["losses"][0], r["order"])
        for j, loss in enumerate(r["losses"][1:]):
            np.testing.assert_array_equal(rule.segment_mixture(), lp_mixture(K, hp["one_hot_factor"], r["order"][j]))
            rule.record_lp_eval(loss)
        graph, p = rule.finish_round()
        worst_graph = max(worst_graph, float(np.max(np.abs(graph - r["graph"]))))
        worst_p = max(worst_p, float(np.max(np.abs(p - r["weights"]))))
    assert len(rounds) >= 5 and all(len(r["losses"]) == 1 + K * hp["lp_rounds"] for r in rounds)
    assert worst_graph == 0.0 and worst_p == 0.0, (f"{name}: max abs difference from the official transcription: "
                                                   f"A {worst_graph!r}, proportions {worst_p!r}")
    assert np.abs(p - 1 / K).max() > 1e-4  # the proportions moved


def test_aioli_rule_state_round_trips_mid_round_exactly():
    def drive(rule, start, stop, rng):
        out = []
        for r in range(start, stop):
            rule.begin_round(3 + rng.random(K), np.concatenate([rng.permutation(K), rng.permutation(K)]))
            for _ in range(2 * K):
                rule.record_lp_eval(3 + rng.random(K))
            out.append(rule.finish_round()[1])
        return out

    rng = np.random.default_rng(0)
    a = AioliRule(K, 0.5, lp_rounds=2, one_hot_factor=0.5, ema=0.1, normalize_A=True)
    drive(a, 0, 3, rng)
    a.begin_round(3 + rng.random(K), np.concatenate([rng.permutation(K), rng.permutation(K)]))
    for _ in range(4):
        a.record_lp_eval(3 + rng.random(K))
    state = a.state_dict()
    doc = json.loads(json.dumps({k: v for k, v in state.items() if not isinstance(v, np.ndarray)}))
    b = AioliRule(K, 0.5, lp_rounds=2, one_hot_factor=0.5, ema=0.1, normalize_A=True)
    b.load_state_dict({**doc, **{k: v.copy() for k, v in state.items() if isinstance(v, np.ndarray)}})
    tail = [3 + rng.random(K) for _ in range(6)]
    for rule in (a, b):
        for loss in tail:
            rule.record_lp_eval(loss)
    np.testing.assert_array_equal(a.finish_round()[1], b.finish_round()[1])
    assert a.rounds == b.rounds == 4


def test_aioli_rule_refuses_a_bad_sweep_order_and_an_unfinished_round():
    rule = AioliRule(3, 0.2, lp_rounds=2, one_hot_factor=0.625)
    with pytest.raises(ValueError, match="2 permutations of the 3 domains"):
        rule.begin_round(np.ones(3), [0, 1, 2, 0, 0, 1])
    rule.begin_round(np.ones(3), [0, 1, 2, 2, 1, 0])
    rule.record_lp_eval(np.ones(3))
    with pytest.raises(ValueError, match="after 1 of 6 LearnParams segments"):
        rule.finish_round()
