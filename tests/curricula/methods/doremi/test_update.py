"""DoReMi's Group-DRO weight update (``curricula/methods/doremi/update.py``) against a hand-computed case, exact state
round trip, the official code's conventions. Pure numpy; fast."""

import json

import numpy as np
import pytest

from curricula.methods.doremi.update import DoReMiConfig, DoReMiError, GroupDROWeights


def test_update_matches_the_hand_computed_case():
    g = GroupDROWeights(3, DoReMiConfig(eta=1.0, smoothing=0.1))
    assert np.allclose(g.weights, 1 / 3) and g.steps == 0

    # Step 1. Per-token clipped excess summed per domain, over 4, 5 and 2 tokens. Domain 1's proxy beats the
    # reference on every token, so each of its tokens was clipped to 0 upstream: its sum is 0.
    #   lambda = [2.0/4, 0.0/5, 3.0/2] = [0.5, 0.0, 1.5]
    #   log alpha = log(1/3) + lambda; the 1/3 cancels in the normalisation:
    #   e^0.5 = 1.6487212707, e^0 = 1, e^1.5 = 4.4816890703, Z1 = 7.1304103410
    #   softmax = [1.6487212707, 1, 4.4816890703] / Z1 = [0.2312238976, 0.1402443832, 0.6285317192]
    #   smoothing: 0.9 * softmax + 0.1/3 = [0.2414348412, 0.1595532782, 0.5990118806]
    a1 = g.update(np.array([2.0, 0.0, 3.0]), np.array([4, 5, 2]))
    assert np.allclose(g.excess, [0.5, 0.0, 1.5], rtol=0, atol=1e-15)
    assert np.allclose(a1, [0.2414348412, 0.1595532782, 0.5990118806], rtol=0, atol=1e-9)
    assert np.allclose(g.average, a1, rtol=0, atol=0) and g.steps == 1

    # Step 2. Domain 0 is absent (0 tokens): it keeps lambda 0.5. Domain 1: 0.6 over 3 tokens, domain 2: 0.5 over 5.
    #   lambda = [0.5, 0.2, 0.1]; e^lambda = [1.6487212707, 1.2214027582, 1.1051709181]
    #   alpha1 * e^lambda = [0.3980587582, 0.1948788140, 0.6620105100], Z2 = 1.2549480823
    #   softmax = [0.3171914152, 0.1552883476, 0.5275202372]
    #   smoothing: 0.9 * softmax + 0.1/3 = [0.3188056070, 0.1730928462, 0.5081015468]
    #   average of the two steps: (alpha1 + alpha2) / 2 = [0.2801202241, 0.1663230622, 0.5535567137]
    a2 = g.update(np.array([0.0, 0.6, 0.5]), np.array([0, 3, 5]))
    assert np.allclose(g.excess, [0.5, 0.2, 0.1], rtol=0, atol=1e-15)
    assert np.allclose(a2, [0.3188056070, 0.1730928462, 0.5081015468], rtol=0, atol=1e-9)
    assert np.allclose(g.average, [0.2801202241, 0.1663230622, 0.5535567137], rtol=0, atol=1e-9)
    assert np.allclose(g.weights, a2, rtol=0, atol=0) and g.steps == 2
    assert abs(g.weights.sum() - 1) < 1e-15 and abs(g.average.sum() - 1) < 1e-15

    a2[0] = 99.0  # update returns a copy
    assert g.weights[0] != 99.0


def test_update_refuses_unclipped_or_inconsistent_input():
    g = GroupDROWeights(3, DoReMiConfig())
    with pytest.raises(DoReMiError, match=r"excess_sum of domain 1 is negative \(-0.3\); DoReMi clips the excess loss "
                       r"per token, max\(l_proxy - l_ref, 0\), before summing.*clip per token upstream"):
        g.update(np.array([1.0, -0.3, 0.0]), np.array([2, 2, 2]))
    with pytest.raises(DoReMiError, match=r"domain 2 has excess_sum 0.5 but token_count 0"):
        g.update(np.array([1.0, 0.0, 0.5]), np.array([2, 2, 0]))
    with pytest.raises(DoReMiError, match=r"excess_sum has shape \(2,\); give one value per domain, shape \(3,\)"):
        g.update(np.array([1.0, 0.0]), np.array([2, 2, 2]))
    with pytest.raises(DoReMiError, match=r"excess_sum of domain 0 is nan"):
        g.update(np.array([np.nan, 0.0, 0.0]), np.array([2, 2, 2]))
    assert g.steps == 0 and np.allclose(g.weights, 1 / 3)  # a refused update changes nothing


def test_initial_weights_and_config_validation():
    g = GroupDROWeights(2, DoReMiConfig(smoothing=0.0, initial_weights=np.array([0.25, 0.75])))
    # log alpha = [log .25, log .75] + [0, log 3] -> weights .25 and 2.25 before normalisation: 0.1 and 0.9
    assert np.allclose(g.update(np.array([0.0, np.log(3) * 4]), np.array([1, 4])), [0.1, 0.9], atol=1e-15)
    with pytest.raises(DoReMiError, match=r"initial_weights has 3 entries for 2 domains"):
        GroupDROWeights(2, DoReMiConfig(initial_weights=np.array([0.2, 0.3, 0.5])))
    with pytest.raises(DoReMiError, match=r"initial_weights: weights sum to"):
        GroupDROWeights(2, DoReMiConfig(initial_weights=np.array([0.2, 0.3])))
    with pytest.raises(DoReMiError, match=r"smoothing=1.5 must be in \[0, 1\]"):
        DoReMiConfig(smoothing=1.5)


def test_state_round_trip_mid_run_gives_identical_weights():
    rng = np.random.default_rng(0)
    steps = [(rng.random(4) * rng.integers(0, 50, 4), rng.integers(0, 50, 4)) for _ in range(20)]
    steps = [(np.where(n > 0, s, 0.0), n) for s, n in steps]
    cfg = DoReMiConfig(eta=1.0, smoothing=1e-3)
    ref = GroupDROWeights(4, cfg)
    for s, n in steps:
        ref.update(s, n)
    g = GroupDROWeights(4, cfg)
    for s, n in steps[:9]:
        g.update(s, n)
    state = json.loads(json.dumps(g.state_dict()))
    resumed = GroupDROWeights(4, cfg)
    resumed.load_state_dict(state)
    for s, n in steps[9:]:
        resumed.update(s, n)
    assert np.array_equal(resumed.weights, ref.weights)  # bit-exact
    assert np.array_equal(resumed.average, ref.average)
    assert np.array_equal(resumed.excess, ref.excess) and resumed.steps == ref.steps == 20
    with pytest.raises(DoReMiError, match=r"saved with eta=1.0, this run has eta=0.1; resume with the same DoReMi"):
        GroupDROWeights(4, DoReMiConfig(eta=0.1)).load_state_dict(state)
    with pytest.raises(DoReMiError, match=r"has 4 domains, this run has 3"):
        GroupDROWeights(3, cfg).load_state_dict(state)


def test_the_official_codes_conventions_reproduce_its_update_exactly():
    """initial_excess=log|V| (an unseen domain's score) and average_includes_initial (update_counter starts at 1), as
    in the official trainer; written out here as that code does it, buffer by buffer."""
    rng = np.random.default_rng(0)
    k, vocab, eta, c = 4, 8192, 1.0, 1e-3
    init = np.array([0.1, 0.2, 0.3, 0.4])
    g = GroupDROWeights(k, DoReMiConfig(eta=eta, smoothing=c, initial_weights=init, initial_excess=np.log(vocab),
                                        average_includes_initial=True))
    train_w, avg_w, scores, counter = init.copy(), init.copy(), np.full(k, np.log(vocab)), 1
    for _ in range(6):
        counts = rng.integers(0, 3, k) * 128.0  # some domains absent from some batches
        sums = rng.random(k) * counts
        g.update(sums, counts)
        present = counts > 0
        scores[present] = sums[present] / counts[present]
        log_w = np.log(train_w) + eta * scores
        log_w -= np.log(np.exp(log_w - log_w.max()).sum()) + log_w.max()
        train_w = (1 - c) * np.exp(log_w) + c / k
        counter += 1
        avg_w = (avg_w * (counter - 1) + train_w) / counter
        np.testing.assert_allclose(g.weights, train_w, rtol=1e-12)
        np.testing.assert_allclose(g.average, avg_w, rtol=1e-12)
    # the defaults differ exactly there: unseen domains start at 0 and the average is over the updates only
    d = GroupDROWeights(k, DoReMiConfig(initial_weights=init))
    d.update(np.zeros(k), np.zeros(k))
    np.testing.assert_allclose(d.average, d.weights)
    assert not np.allclose(d.weights, g.weights)


def test_the_conventions_are_recipe_options_checked_early_and_saved_with_the_state():
    from curricula.errors import ConfigError
    from curricula.methods import DoReMiOnlineConfig, GroupDROConfig
    from curricula.methods import DoReMiRecipe

    assert DoReMiRecipe(initial_excess="log_vocab", average_includes_initial=True).dro_options()["initial_excess"] \
        == "log_vocab"
    with pytest.raises(ConfigError, match="'log_vocab'"):
        GroupDROConfig(initial_excess="logV")
    with pytest.raises(ConfigError, match="'log_vocab'"):
        DoReMiRecipe(initial_excess="logV")  # a recipe is checked when it is read, before any training
    with pytest.raises(ConfigError, match="initial_excess=-1"):
        DoReMiOnlineConfig(initial_excess=-1)
    cfg = GroupDROConfig(initial_excess="log_vocab", average_includes_initial=True).dro_config(vocab_size=8192)
    assert cfg.initial_excess == pytest.approx(np.log(8192)) and cfg.average_includes_initial
    g = GroupDROWeights(3, cfg)
    state = g.state_dict()
    assert state["initial_excess"] == pytest.approx(np.log(8192)) and state["average_includes_initial"] is True
    with pytest.raises(DoReMiError, match="average_includes_initial"):
        GroupDROWeights(3, DoReMiConfig(initial_excess=np.log(8192))).load_state_dict(state)
    older = {k: v for k, v in GroupDROWeights(3, DoReMiConfig()).state_dict().items()
             if k not in ("initial_excess", "average_includes_initial")}
    GroupDROWeights(3, DoReMiConfig()).load_state_dict(older)  # a state saved before the options existed
