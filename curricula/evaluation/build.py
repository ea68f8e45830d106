"""Deterministic held-out evaluation tasks built from a corpus' validation split.

The Hub is unreachable here, so :func:`build_tasks` derives zero-shot tasks (in the JSONL format of
:mod:`curricula.evaluation.tasks`) from the validation documents of a corpus written by
:mod:`curricula.data.corpus`:

- ``lastword_prose.jsonl``, ``lastword_conversational.jsonl`` (cloze, LAMBADA-style): a line of >= 8 words
  that ends in a plain word (letters only, >= 3 characters, optionally followed by closing punctuation);
  ``context`` is the document text before that word (at most ~600 characters, cut at a whitespace boundary),
  ending with the space before the word; ``target`` is the word itself (no leading space).
- ``nextline_<domain>.jsonl`` for prose, technical, legal, reference and science (multiple choice):
  ``context`` is up to 3 preceding non-empty lines, each followed by ``"\\n"``; ``choices`` are the true next line
  plus ``n_choices - 1`` distractor lines from *other* validation documents of the same domain (of similar
  length where possible), shuffled; ``answer`` is the index of the true line.
- ``codeline.jsonl`` (multiple choice): the same on Go source lines of the code domain (blank and brace-only
  lines are never a target nor a distractor).

Every example id is ``<task>/<doc_id>/<n>`` where ``n`` is the 0-based line number of the target line in
its document. The randomness comes from ``random.Random`` seeded with a string made of ``seed``, the task and the
document, so the same corpus and arguments give byte-identical files. Examples are spread over documents
round-robin (so one long document cannot fill a task) and written in document order.

A model scores ``context + choice`` (multiple choice) or predicts the word after ``context`` (cloze); nothing
is inserted between them. :data:`hub_task_adapters` converts HellaSwag, PIQA, ARC and LAMBADA from the Hub to the
same example classes for users who can reach it (choices there carry their leading space).
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace

from .tasks import (
    CLOZE,
    MULTIPLE_CHOICE,
    ClozeExample,
    Example,
    MultipleChoiceExample,
    TaskBuildError,
    TaskSpec,
    load_task_file,
    register_task,
)

LASTWORD_DOMAINS = ("prose", "conversational")
NEXTLINE_DOMAINS = ("prose", "technical", "legal", "reference", "science")
CODE_DOMAIN = "code"
CODE_TASK = "codeline"

MAX_CONTEXT_CHARS = 600
MIN_LINE_WORDS = 8  # last-word lines
MIN_CHOICE_CHARS = 20  # next-line targets and distractors
MAX_CHOICE_CHARS = 300
MIN_CODE_CHARS = 8
CONTEXT_LINES = 3

# A last word: letters only, >= 3 characters, optionally followed by closing punctuation (not part of the target).
_LAST_WORD = re.compile(r"(?<!\S)([A-Za-z]{3,})[.,;:!?\"')\]]*\s*$")
_BRACE_ONLY = re.compile(r"^[\s{}()\[\];,]*$")


def _lastword_task(domain: str) -> str:
    return f"lastword_{domain}"


def _nextline_task(domain: str) -> str:
    return f"nextline_{domain}"


DESCRIPTIONS = {
    **{
        _lastword_task(d): f"last-word prediction (cloze) on {d} validation documents of the corpus"
        for d in LASTWORD_DOMAINS
    },
    **{
        _nextline_task(d): f"next-line multiple choice on {d} validation documents, distractors from other {d} documents"
        for d in NEXTLINE_DOMAINS
    },
    CODE_TASK: "next Go source line multiple choice on code validation documents, distractors from other code files",
}
KINDS_BY_TASK = {
    **{_lastword_task(d): CLOZE for d in LASTWORD_DOMAINS},
    **{_nextline_task(d): MULTIPLE_CHOICE for d in NEXTLINE_DOMAINS},
    CODE_TASK: MULTIPLE_CHOICE,
}


def _rng(seed: int, *parts: str) -> random.Random:
    # str seeds are hashed with SHA-512 by random.seed: stable across runs and PYTHONHASHSEED.
    return random.Random("\x1f".join([str(seed), *parts]))


def _cut_left(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text`` or fewer, starting at a word boundary."""
    if len(text) <= limit:
        return text
    tail = text[-limit:]
    if not text[-limit - 1].isspace():
        m = re.search(r"\s", tail)
        if m is None or m.end() >= len(tail):
            return tail
        tail = tail[m.end() :]
    return tail.lstrip()


def _line_spans(text: str) -> list[tuple[int, int, int]]:
    """(line number, start offset, end offset without the newline) of every line."""
    spans, pos = [], 0
    for n, line in enumerate(text.split("\n")):
        spans.append((n, pos, pos + len(line)))
        pos += len(line) + 1
    return spans


# --------------------------------------------------------------------------- candidates per document


def _lastword_candidates(text: str) -> list[tuple[int, str, str]]:
    """(line number, context, target) for each usable line of one document."""
    out = []
    for n, start, end in _line_spans(text):
        line = text[start:end]
        if len(line.split()) < MIN_LINE_WORDS:
            continue
        m = _LAST_WORD.search(line)
        if m is None:
            continue
        target = m.group(1)
        if target.isupper():  # headings, speaker names
            continue
        word_at = start + m.start(1)
        context = _cut_left(text[:word_at], MAX_CONTEXT_CHARS)
        if not context.endswith((" ", "\t")) or len(context.split()) < MIN_LINE_WORDS - 1:
            continue
        out.append((n, context, target))
    return out


def _usable_line(line: str, code: bool) -> bool:
    s = line.strip()
    if code:
        return len(s) >= MIN_CODE_CHARS and len(line) <= MAX_CHOICE_CHARS and not _BRACE_ONLY.match(line)
    return MIN_CHOICE_CHARS <= len(s) <= MAX_CHOICE_CHARS and any(c.isalpha() for c in s)


def _nonempty_lines(text: str) -> list[tuple[int, str]]:
    return [(n, text[a:b].rstrip()) for n, a, b in _line_spans(text) if text[a:b].strip()]


def _nextline_candidates(text: str, code: bool) -> list[tuple[int, str, str]]:
    """(line number, context, true line) for each usable line with at least one non-empty line before it."""
    lines = _nonempty_lines(text)
    out = []
    for i in range(1, len(lines)):
        n, line = lines[i]
        if not _usable_line(line, code):
            continue
        before = [ln for _, ln in lines[max(0, i - CONTEXT_LINES) : i]]
        context = _cut_left("".join(ln + "\n" for ln in before), MAX_CONTEXT_CHARS)
        if not context.strip():
            continue
        out.append((n, context, line))
    return out


def _spread(
    per_doc: list[tuple[str, list]],
    max_examples: int,
    seed: int,
    task: str,
    make: Callable[[str, tuple], dict | None],
) -> list[dict]:
    """Up to ``max_examples`` records, taken round-robin over documents (random order within each), in doc order.

    ``make(doc_id, candidate)`` turns a candidate (whose first item is its line number) into a record, or returns
    ``None`` to skip it.
    """
    queues = []
    for doc_id, cands in per_doc:
        cands = list(cands)
        _rng(seed, task, doc_id, "pick").shuffle(cands)
        queues.append((doc_id, cands))
    picked: dict[str, list[tuple[int, dict]]] = {doc_id: [] for doc_id, _ in queues}
    total, depth = 0, 0
    while total < max_examples and any(depth < len(c) for _, c in queues):
        for doc_id, cands in queues:
            if depth < len(cands) and total < max_examples:
                record = make(doc_id, cands[depth])
                if record is not None:
                    picked[doc_id].append((cands[depth][0], record))
                    total += 1
        depth += 1
    return [rec for doc_id, _ in queues for _, rec in sorted(picked[doc_id], key=lambda t: t[0])]


def _pick_distractors(
    pool: Sequence[tuple[str, str]], doc_id: str, true_line: str, k: int, rng: random.Random
) -> list[str] | None:
    """``k`` distinct lines from other documents, preferring lengths within 0.5x..2x of the true line."""
    others = [ln for d, ln in pool if d != doc_id and ln.strip() != true_line.strip()]
    n = len(true_line.strip())
    band = [ln for ln in others if n / 2 <= len(ln.strip()) <= 2 * n]
    chosen: list[str] = []
    seen = {true_line.strip()}
    for group in (band, others):
        group = list(group)
        rng.shuffle(group)
        for ln in group:
            if len(chosen) == k:
                break
            if ln.strip() not in seen:
                seen.add(ln.strip())
                chosen.append(ln)
    return chosen if len(chosen) == k else None


# --------------------------------------------------------------------------- building


def _validation_docs(corpus_dir: str | os.PathLike) -> dict[str, list[tuple[str, str]]]:
    """domain -> [(doc_id, text)] of the validation split, sorted by doc_id."""
    from curricula.data.corpus import load_corpus

    val = load_corpus(Path(corpus_dir))["validation"]
    by_domain: dict[str, list[tuple[str, str]]] = {}
    for text, domain, doc_id in zip(val["text"], val["domain"], val["doc_id"]):
        by_domain.setdefault(domain, []).append((doc_id, text))
    return {d: sorted(docs) for d, docs in by_domain.items()}


def _build_lastword(docs: list[tuple[str, str]], task: str, seed: int, max_examples: int) -> list[dict]:
    def make(doc_id: str, cand: tuple) -> dict:
        n, context, target = cand
        return {"id": f"{task}/{doc_id}/{n}", "context": context, "target": target}

    per_doc = [(doc_id, _lastword_candidates(text)) for doc_id, text in docs]
    return _spread(per_doc, max_examples, seed, task, make)


def _build_nextline(
    docs: list[tuple[str, str]], task: str, seed: int, max_examples: int, n_choices: int, code: bool
) -> list[dict]:
    pool = [(doc_id, ln) for doc_id, text in docs for _, ln in _nonempty_lines(text) if _usable_line(ln, code)]

    def make(doc_id: str, cand: tuple) -> dict | None:
        n, context, line = cand
        rng = _rng(seed, task, doc_id, str(n))
        distractors = _pick_distractors(pool, doc_id, line, n_choices - 1, rng)
        if distractors is None:  # too few lines in other documents
            return None
        choices = [line, *distractors]
        order = list(range(n_choices))
        rng.shuffle(order)
        return {
            "id": f"{task}/{doc_id}/{n}",
            "context": context,
            "choices": [choices[j] for j in order],
            "answer": order.index(0),
        }

    per_doc = [(doc_id, _nextline_candidates(text, code)) for doc_id, text in docs]
    return _spread(per_doc, max_examples, seed, task, make)


def _write_jsonl(path: Path, records: Iterable[dict]) -> None:
    from curricula.run_layout import write_text

    write_text(path, "".join(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n" for rec in records))


def build_tasks(
    corpus_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    max_examples: int = 200,
    n_choices: int = 4,
) -> dict[str, Path]:
    """Write the held-out tasks of ``corpus_dir``'s validation split to ``out_dir``; returns ``{task: path}``.

    Tasks whose domain is missing from the corpus, or that yield no example, are not written (and not returned).
    Each written file is read back with :func:`load_task_file`.
    """
    if max_examples < 1:
        raise TaskBuildError(f"max_examples={max_examples} must be >= 1")
    if n_choices < 2:
        raise TaskBuildError(f"n_choices={n_choices} must be >= 2 (the true line and at least one distractor)")
    by_domain = _validation_docs(corpus_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    built: dict[str, list[dict]] = {}
    for domain in LASTWORD_DOMAINS:
        if domain in by_domain:
            task = _lastword_task(domain)
            built[task] = _build_lastword(by_domain[domain], task, seed, max_examples)
    for domain in NEXTLINE_DOMAINS:
        if domain in by_domain:
            task = _nextline_task(domain)
            built[task] = _build_nextline(by_domain[domain], task, seed, max_examples, n_choices, code=False)
    if CODE_DOMAIN in by_domain:
        built[CODE_TASK] = _build_nextline(by_domain[CODE_DOMAIN], CODE_TASK, seed, max_examples, n_choices, code=True)

    paths: dict[str, Path] = {}
    for task, records in built.items():
        if not records:
            continue
        path = out / f"{task}.jsonl"
        _write_jsonl(path, records)
        load_task_file(path, kind=KINDS_BY_TASK[task])
        paths[task] = path
    return paths


def register_built_tasks(out_dir: str | os.PathLike) -> dict[str, TaskSpec]:
    """Register every ``*.jsonl`` in ``out_dir`` in :data:`~curricula.evaluation.tasks.TASKS` (name = file stem).

    The kind comes from the task name for files :func:`build_tasks` writes, otherwise from the file's first line.
    """
    specs = {}
    for path in sorted(Path(out_dir).glob("*.jsonl")):
        name = path.stem
        kind = KINDS_BY_TASK.get(name) or load_task_file(path)[0].kind
        specs[name] = register_task(name, path, kind, DESCRIPTIONS.get(name, f"task file {path.name}"))
    return specs


# --------------------------------------------------------------------------- Hub adapters

HELLASWAG_HUB = "Rowan/hellaswag"
PIQA_HUB = "ybisk/piqa"
ARC_HUB = "allenai/ai2_arc"
LAMBADA_HUB = "EleutherAI/lambada_openai"


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag_example(row: dict, index: int = 0) -> MultipleChoiceExample:
    """One HellaSwag row -> multiple choice.

    Fields: ``ind`` (id), ``activity_label``, ``ctx_a``, ``ctx_b``, ``endings`` (4 strings), ``label`` (a digit
    string, ``""`` on the unlabeled test split). ``context = clean(activity_label + ": " + ctx_a + " " +
    ctx_b.capitalize())``, ``choices = [" " + clean(ending)]``, ``answer = int(label)`` where ``clean`` drops the
    WikiHow ``[title]``/``[step]`` markup (as lm-evaluation-harness does).
    """
    if str(row.get("label", "")).strip() == "":
        raise TaskBuildError(f"hellaswag row {row.get('ind', index)} has no label (the test split is unlabeled)")
    context = _hellaswag_clean(f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b'].capitalize()}")
    return MultipleChoiceExample(
        id=f"hellaswag/{row.get('ind', index)}",
        context=context,
        choices=tuple(" " + _hellaswag_clean(e) for e in row["endings"]),
        answer=int(row["label"]),
    )


def piqa_example(row: dict, index: int = 0) -> MultipleChoiceExample:
    """One PIQA row -> multiple choice.

    Fields: ``goal``, ``sol1``, ``sol2``, ``label`` (0 or 1; -1 on the test split). ``context = "Question: " + goal
    + "\\nAnswer:"``, ``choices = (" " + sol1, " " + sol2)``, ``answer = label``; the row has no id, so the id is
    ``piqa/<index>``.
    """
    label = int(row["label"])
    if label not in (0, 1):
        raise TaskBuildError(f"piqa row {index} has label {label} (the test split is unlabeled)")
    return MultipleChoiceExample(
        id=f"piqa/{index}",
        context=f"Question: {row['goal']}\nAnswer:",
        choices=(" " + row["sol1"], " " + row["sol2"]),
        answer=label,
    )


def arc_example(row: dict, index: int = 0) -> MultipleChoiceExample:
    """One ARC row -> multiple choice.

    Fields: ``id``, ``question``, ``choices = {"text": [...], "label": ["A", "B", ...] or ["1", "2", ...]}``,
    ``answerKey`` (one of the labels). ``context = "Question: " + question + "\\nAnswer:"``,
    ``choices = [" " + text]``, ``answer = labels.index(answerKey)``.
    """
    labels = list(row["choices"]["label"])
    if row["answerKey"] not in labels:
        raise TaskBuildError(f"arc row {row.get('id', index)}: answerKey {row['answerKey']!r} is not in {labels}")
    return MultipleChoiceExample(
        id=f"arc/{row.get('id', index)}",
        context=f"Question: {row['question']}\nAnswer:",
        choices=tuple(" " + t for t in row["choices"]["text"]),
        answer=labels.index(row["answerKey"]),
    )


def lambada_example(row: dict, index: int = 0) -> ClozeExample:
    """One LAMBADA row -> cloze.

    Field: ``text`` (the passage; its last whitespace-separated word is the target). ``context`` is the text up to
    and including the last space, ``target`` the last word, as in :func:`build_tasks`; the id is ``lambada/<index>``.
    """
    text = row["text"].rstrip()
    cut = max(text.rfind(" "), text.rfind("\n"))
    if cut <= 0:
        raise TaskBuildError(f"lambada row {index} has a single word: {text!r}")
    return ClozeExample(id=f"lambada/{index}", context=text[: cut + 1], target=text[cut + 1 :])


def _convert(rows: Iterable[dict], converter: Callable[[dict, int], Example]) -> list[Example]:
    return [converter(row, i) for i, row in enumerate(rows)]


def hellaswag(split: str = "validation") -> list[MultipleChoiceExample]:
    """HellaSwag (``Rowan/hellaswag``) ``split`` as examples; needs the Hub."""
    import datasets

    return _convert(datasets.load_dataset(HELLASWAG_HUB, split=split), hellaswag_example)


def piqa(split: str = "validation") -> list[MultipleChoiceExample]:
    """PIQA (``ybisk/piqa``) ``split`` as examples; needs the Hub."""
    import datasets

    return _convert(datasets.load_dataset(PIQA_HUB, split=split), piqa_example)


def arc(split: str = "test", config: str = "ARC-Easy") -> list[MultipleChoiceExample]:
    """ARC (``allenai/ai2_arc``, config ``ARC-Easy`` or ``ARC-Challenge``) ``split`` as examples; needs the Hub."""
    import datasets

    return _convert(datasets.load_dataset(ARC_HUB, config, split=split), arc_example)


def lambada(split: str = "test") -> list[ClozeExample]:
    """LAMBADA (``EleutherAI/lambada_openai``, English) ``split`` as examples; needs the Hub."""
    import datasets

    return _convert(datasets.load_dataset(LAMBADA_HUB, "en", split=split), lambada_example)


hub_task_adapters = SimpleNamespace(
    hellaswag=hellaswag,
    piqa=piqa,
    arc=arc,
    lambada=lambada,
    hellaswag_example=hellaswag_example,
    piqa_example=piqa_example,
    arc_example=arc_example,
    lambada_example=lambada_example,
)


def write_examples(examples: Iterable[Example], path: str | os.PathLike) -> Path:
    """Write examples (e.g. from a Hub adapter) as a JSONL task file that :func:`load_task_file` reads back."""
    records = []
    for ex in examples:
        if ex.kind == CLOZE:
            records.append({"id": ex.id, "context": ex.context, "target": ex.target})
        else:
            records.append({"id": ex.id, "context": ex.context, "choices": list(ex.choices), "answer": ex.answer})
    path = Path(path)
    _write_jsonl(path, records)
    load_task_file(path)
    return path


__all__ = [
    "CODE_TASK",
    "DESCRIPTIONS",
    "KINDS_BY_TASK",
    "LASTWORD_DOMAINS",
    "NEXTLINE_DOMAINS",
    "arc",
    "arc_example",
    "build_tasks",
    "hellaswag",
    "hellaswag_example",
    "hub_task_adapters",
    "lambada",
    "lambada_example",
    "piqa",
    "piqa_example",
    "register_built_tasks",
    "write_examples",
]
