"""Shipped evaluate metric modules (loaded by local path, offline) and the JSONL task format."""

import json
import math
import os

import pytest

from curricula.evaluation import (
    ClozeExample,
    MultipleChoiceExample,
    TaskFormatError,
    UnknownTaskError,
    get_task,
    load_task_file,
    register_task,
)
from curricula.metrics import METRICS, load_metric, metric_path


@pytest.fixture(scope="module")
def evaluate_offline():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # set by conftest
    import evaluate

    return evaluate


# ---------------------------------------------------------------- metric modules


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


# ---------------------------------------------------------------- task format


def _write(tmp_path, lines, name="task.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_load_multiple_choice_and_cloze(tmp_path):
    mc = _write(
        tmp_path,
        [
            {"id": "q1", "context": "The sky is", "choices": [" blue", " green"], "answer": 0},
            "",
            {"id": "q2", "context": "2 + 2 =", "choices": [" 3", " 4", " 5"], "answer": 1, "extra": "ignored"},
        ],
        "mc.jsonl",
    )
    examples = load_task_file(mc)
    assert examples == [
        MultipleChoiceExample(id="q1", context="The sky is", choices=(" blue", " green"), answer=0),
        MultipleChoiceExample(id="q2", context="2 + 2 =", choices=(" 3", " 4", " 5"), answer=1),
    ]
    cloze = _write(tmp_path, [{"id": "c1", "context": "To be or not to", "target": "be"}], "cloze.jsonl")
    assert load_task_file(cloze, kind="cloze") == [ClozeExample(id="c1", context="To be or not to", target="be")]
    assert load_task_file(cloze)[0].kind == "cloze"


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "q1", "context": "x", "choices": ["a"], ', r"task\.jsonl:2: invalid JSON"),
        ({"id": "q1", "choices": ["a", "b"], "answer": 0}, r"task\.jsonl:2: missing field 'context'"),
        ({"id": "q1", "context": "x", "choices": ["a", "b"]}, r"task\.jsonl:2: missing field 'answer'"),
        (
            {"id": "q1", "context": "x", "choices": ["a", "b"], "answer": 2},
            r"task\.jsonl:2: answer index 2 is out of range 0\.\.1 \(2 choices\)",
        ),
        ({"id": "q1", "context": "x", "choices": ["a"], "answer": -1}, r"out of range 0\.\.0"),
        ({"id": "q1", "context": "x", "choices": [], "answer": 0}, r"task\.jsonl:2: field 'choices' is empty"),
        ({"id": "q0", "context": "x", "choices": ["a"], "answer": 0}, r"task\.jsonl:2: duplicate id 'q0' \(first seen on line 1\)"),
        ({"id": "q1", "context": "x", "choices": ["a"], "answer": True}, r"'answer' must be an integer"),
        ([1, 2], r"task\.jsonl:2: a line must be a JSON object"),
    ],
)
def test_task_file_errors_name_file_and_line(tmp_path, line, message):
    first = {"id": "q0", "context": "c", "choices": ["a", "b"], "answer": 1}
    path = _write(tmp_path, [first, line])
    with pytest.raises(TaskFormatError, match=message):
        load_task_file(path)


def test_task_file_cloze_missing_target_and_unknown_kind(tmp_path):
    path = _write(tmp_path, [{"id": "c1", "context": "x"}])
    with pytest.raises(TaskFormatError, match=r"task\.jsonl:1: missing field 'target'"):
        load_task_file(path, kind="cloze")
    with pytest.raises(TaskFormatError, match="cannot tell the task kind"):
        load_task_file(path)
    with pytest.raises(TaskFormatError, match="unknown task kind 'qa'; known kinds: multiple_choice, cloze"):
        load_task_file(path, kind="qa")


def test_task_file_not_utf8_and_empty(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"id": "c1", "context": "x", "target": "y"}\n{"id": "c2", "context": "caf\xe9", "target": "y"}\n')
    with pytest.raises(TaskFormatError, match=r"latin1\.jsonl:2: not valid UTF-8"):
        load_task_file(path)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(TaskFormatError, match="no examples"):
        load_task_file(empty)


def test_task_registry(tmp_path, monkeypatch):
    monkeypatch.setattr("curricula.evaluation.tasks.TASKS", {})
    path = _write(tmp_path, [{"id": "c1", "context": "x", "target": "y"}])
    spec = register_task("toy_cloze", path, "cloze", "a toy")
    assert get_task("toy_cloze") is spec and spec.metric == "cloze"
    assert spec.load() == [ClozeExample(id="c1", context="x", target="y")]
    with pytest.raises(UnknownTaskError, match=r"unknown task 'lambada'; known tasks: toy_cloze") as info:
        get_task("lambada")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "unknown task 'lambada'; known tasks: toy_cloze"
    with pytest.raises(TaskFormatError, match="unknown task kind"):
        register_task("bad", path, "qa")
