"""Zero-shot evaluation tasks (JSONL format) for the shipped ``evaluate`` metrics."""

from .tasks import (
    CLOZE,
    KINDS,
    MULTIPLE_CHOICE,
    TASKS,
    ClozeExample,
    Example,
    MultipleChoiceExample,
    TaskFormatError,
    TaskSpec,
    UnknownTaskError,
    get_task,
    load_task_file,
    register_task,
)

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
