"""A simple JSONL task format for zero-shot evaluation by log-likelihood.

One JSON object per line (blank lines are skipped):

- multiple choice: ``{"id": str, "context": str, "choices": [str, ...], "answer": int}``;
  ``answer`` is the 0-based index of the correct continuation in ``choices``.
- cloze / last word (LAMBADA-style): ``{"id": str, "context": str, "target": str}``;
  ``target`` is the word the model must produce after ``context``.

Extra fields are ignored. :func:`load_task_file` checks every line and raises
:class:`TaskFormatError` naming ``file:line`` for invalid JSON, a missing field, a wrongly
typed field, empty choices, an answer index out of range, a duplicate id or a file that
is not UTF-8. Pure Python (no torch): scoring by a model lives elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Union
from curricula.errors import CurriculaError

MULTIPLE_CHOICE = "multiple_choice"
CLOZE = "cloze"
KINDS = (MULTIPLE_CHOICE, CLOZE)

_FIELDS = {
    MULTIPLE_CHOICE: ("id", "context", "choices", "answer"),
    CLOZE: ("id", "context", "target"),
}


class TaskFormatError(CurriculaError):
    """A task file that cannot be used; the message says where (``file:line``) and why."""


class TaskBuildError(CurriculaError):
    """Source rows or settings a task cannot be built (or scored) from; the message names the row or setting."""


class UnknownTaskError(CurriculaError, KeyError):
    """:func:`get_task` was given a name that is not in :data:`TASKS`."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class MultipleChoiceExample:
    id: str
    context: str
    choices: tuple[str, ...]
    answer: int
    kind: str = field(default=MULTIPLE_CHOICE, init=False)


@dataclass(frozen=True)
class ClozeExample:
    id: str
    context: str
    target: str
    kind: str = field(default=CLOZE, init=False)


Example = Union[MultipleChoiceExample, ClozeExample]


def _infer_kind(record: dict, where: str) -> str:
    if "choices" in record or "answer" in record:
        return MULTIPLE_CHOICE
    if "target" in record:
        return CLOZE
    raise TaskFormatError(
        f"{where}: cannot tell the task kind: a line needs 'choices' and 'answer' (multiple choice) "
        f"or 'target' (cloze); found fields {sorted(record)}"
    )


def _parse(record: dict, kind: str, where: str) -> Example:
    for name in _FIELDS[kind]:
        if name not in record:
            raise TaskFormatError(f"{where}: missing field {name!r} (a {kind} line needs {list(_FIELDS[kind])})")
    if not isinstance(record["id"], str) or not record["id"]:
        raise TaskFormatError(f"{where}: field 'id' must be a non-empty string, got {record['id']!r}")
    if not isinstance(record["context"], str):
        raise TaskFormatError(f"{where}: field 'context' must be a string, got {type(record['context']).__name__}")
    if kind == CLOZE:
        target = record["target"]
        if not isinstance(target, str) or not target.strip():
            raise TaskFormatError(f"{where}: field 'target' must be a non-empty string, got {target!r}")
        return ClozeExample(id=record["id"], context=record["context"], target=target)
    choices = record["choices"]
    if not isinstance(choices, list):
        raise TaskFormatError(f"{where}: field 'choices' must be a list of strings, got {type(choices).__name__}")
    if not choices:
        raise TaskFormatError(f"{where}: field 'choices' is empty; a question needs at least one choice")
    for j, choice in enumerate(choices):
        if not isinstance(choice, str):
            raise TaskFormatError(f"{where}: choices[{j}] must be a string, got {type(choice).__name__}")
    answer = record["answer"]
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise TaskFormatError(f"{where}: field 'answer' must be an integer index, got {answer!r}")
    if not 0 <= answer < len(choices):
        raise TaskFormatError(
            f"{where}: answer index {answer} is out of range 0..{len(choices) - 1} ({len(choices)} choices)"
        )
    return MultipleChoiceExample(id=record["id"], context=record["context"], choices=tuple(choices), answer=answer)


def load_task_file(path: str | os.PathLike, kind: str | None = None) -> list[Example]:
    """Read a JSONL task file into examples.

    ``kind`` is ``"multiple_choice"``, ``"cloze"`` or ``None`` (infer it from the first line;
    every line must then be of that kind).
    """
    if kind is not None and kind not in KINDS:
        raise TaskFormatError(f"unknown task kind {kind!r}; known kinds: {', '.join(KINDS)}")
    path = os.fspath(path)
    with open(path, "rb") as handle:
        raw_lines = handle.read().split(b"\n")
    examples: list[Example] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(raw_lines, start=1):
        where = f"{path}:{lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TaskFormatError(f"{where}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
        if lineno == 1:
            line = line.lstrip("\ufeff")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskFormatError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(record, dict):
            raise TaskFormatError(f"{where}: a line must be a JSON object, got {type(record).__name__}")
        line_kind = _infer_kind(record, where) if kind is None else kind
        if kind is None:
            kind = line_kind  # the first line decides for the whole file
        example = _parse(record, kind, where)
        if example.id in seen:
            raise TaskFormatError(f"{where}: duplicate id {example.id!r} (first seen on line {seen[example.id]})")
        seen[example.id] = lineno
        examples.append(example)
    if not examples:
        raise TaskFormatError(f"{path}: no examples (the file is empty)")
    return examples


@dataclass(frozen=True)
class TaskSpec:
    """A named task: a JSONL file of one kind, plus which metric module scores it."""

    name: str
    path: str
    kind: str
    description: str = ""

    @property
    def metric(self) -> str:
        return "multiple_choice" if self.kind == MULTIPLE_CHOICE else "cloze"

    def load(self) -> list[Example]:
        return load_task_file(self.path, kind=self.kind)


TASKS: dict[str, TaskSpec] = {}


def register_task(name: str, path: str | os.PathLike, kind: str, description: str = "") -> TaskSpec:
    """Add (or replace) a named task in :data:`TASKS`."""
    if kind not in KINDS:
        raise TaskFormatError(f"unknown task kind {kind!r}; known kinds: {', '.join(KINDS)}")
    spec = TaskSpec(name=name, path=os.fspath(path), kind=kind, description=description)
    TASKS[name] = spec
    return spec


def get_task(name: str) -> TaskSpec:
    """The registered task ``name``.

    Unknown names raise :class:`UnknownTaskError` (a ``KeyError``) listing the known ones.
    """
    try:
        return TASKS[name]
    except KeyError:
        known = ", ".join(sorted(TASKS)) or "(none registered; see register_task)"
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {known}") from None


__all__ = [
    "CLOZE",
    "KINDS",
    "MULTIPLE_CHOICE",
    "TASKS",
    "ClozeExample",
    "Example",
    "MultipleChoiceExample",
    "TaskFormatError",
    "TaskSpec",
    "UnknownTaskError",
    "get_task",
    "load_task_file",
    "register_task",
]
