"""The shipped ``evaluate`` metric modules (``curricula/metrics/``: domain perplexity, multiple choice, cloze), loaded
by local path, offline."""

import math
import os

import pytest

from curricula.metrics import METRICS, load_metric, metric_path


@pytest.fixture(scope="module")
def evaluate_offline():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by conftest
    import evaluate

    return evaluate


def test_metric_path_points_at_module_folder():
    for name in METRICS:
        path = metric_path(name)
        assert os.path.isfile(os.path.join(path, f"{name}.py"))


def test_unknown_metric_lists_known():
    with pytest.raises(ValueError, match=r"unknown metric 'accuracy'; known metrics: cloze, domain_perplexity"):
        metric_path("accuracy")
    with pytest.raises(ValueError, match="known metrics"):
        load_metric("perplexity")


def test_domain_perplexity_known_distribution(evaluate_offline, no_network):
    metric = evaluate_offline.load(metric_path("domain_perplexity"))
    # Domain "uniform": a model that is uniform over V = 50 tokens has NLL log(50) per token,
    # so perplexity is exactly 50, whatever the block sizes.
    # Domain "mixed": blocks with mean NLL log(4) over 100 tokens and log(16) over 300 tokens:
    #   token-weighted mean NLL = (100 log 4 + 300 log 16) / 400 = (100*2 + 300*4)/400 * log 2 = 3.5 log 2
    #   perplexity = 2**3.5 = 11.3137...  (not the block mean (4 + 16)/2 = 10, nor exp of the plain mean 2**3 = 8)
    # uniform_average = (50 + 2**3.5) / 2 = 30.6568...; worst_case = 50.
    metric.add_batch(loss=[math.log(50), math.log(4)], tokens=[10, 100], domain=["uniform", "mixed"])
    result = metric.compute(loss=[math.log(16), math.log(50)], tokens=[300, 7], domain=["mixed", "uniform"])
    assert result["perplexity"]["uniform"] == pytest.approx(50.0)
    assert result["perplexity"]["mixed"] == pytest.approx(2**3.5)
    assert result["uniform_average"] == pytest.approx((50 + 2**3.5) / 2)
    assert result["worst_case"] == pytest.approx(50.0)
    assert result["tokens"] == {"mixed": 400, "uniform": 17}


def test_domain_perplexity_rejects_zero_tokens(evaluate_offline):
    metric = load_metric("domain_perplexity")
    with pytest.raises(ValueError, match=r"row 1 \(domain 'b'\) has tokens=0"):
        metric.compute(loss=[1.0, 1.0], tokens=[3, 0], domain=["a", "b"])


def test_multiple_choice_forced_answer_and_length_normalisation(evaluate_offline, no_network):
    metric = evaluate_offline.load(metric_path("multiple_choice"))
    # Q0: choice 2 is forced (log-likelihood -1 vs -100): right both raw and normalised.
    # Q1: raw sums -6 (len 2) vs -9 (len 9): raw picks 0; per char -3 vs -1: normalised picks 1 (the answer).
    # Q2: all tied: the lower index (0) wins both ways; answer 1, so wrong both ways.
    # accuracy = 1/3 (Q0); accuracy_norm = 2/3 (Q0, Q1).
    result = metric.compute(
        choice_logprobs=[[-100.0, -120.0, -1.0], [-6.0, -9.0], [-5.0, -5.0]],
        choice_lengths=[[4, 4, 4], [2, 9], [3, 3]],
        answer=[2, 1, 1],
    )
    assert result == {"accuracy": pytest.approx(1 / 3), "accuracy_norm": pytest.approx(2 / 3)}
    # Ties break towards the lower index.
    tie = metric.compute(choice_logprobs=[[-5.0, -5.0]], choice_lengths=[[3, 3]], answer=[0])
    assert tie == {"accuracy": 1.0, "accuracy_norm": 1.0}


def test_multiple_choice_bad_input(evaluate_offline):
    metric = load_metric("multiple_choice")
    with pytest.raises(ValueError, match=r"answer 3, out of range 0\.\.1"):
        metric.compute(choice_logprobs=[[-1.0, -2.0]], choice_lengths=[[1, 1]], answer=[3])
    with pytest.raises(ValueError, match="2 choice_logprobs but 1 choice_lengths"):
        metric.compute(choice_logprobs=[[-1.0, -2.0]], choice_lengths=[[1]], answer=[0])


def test_cloze_accuracy(evaluate_offline, no_network):
    metric = evaluate_offline.load(metric_path("cloze"))
    predictions = [" dog", "Cat", "house\n", "tree"]
    references = ["dog", "cat", "house", "bush"]
    assert metric.compute(predictions=predictions, references=references) == {"accuracy": 0.5}
    assert metric.compute(predictions=predictions, references=references, ignore_case=True) == {"accuracy": 0.75}


def test_hub_names_fail_offline(evaluate_offline):
    # The point of shipping the modules: a Hub name cannot be loaded offline.
    with pytest.raises(Exception):
        evaluate_offline.load("accuracy")
