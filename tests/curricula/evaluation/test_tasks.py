"""The JSONL task format (``curricula/evaluation/tasks.py``): multiple-choice and cloze files, errors that name the
file and line, the task registry."""

import json

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
