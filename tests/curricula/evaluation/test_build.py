"""Held-out tasks built from the embedded sample corpus, and the Hub row converters (no network)."""

from __future__ import annotations

import re

import pytest

from curricula.data.build import build_from_sample
from curricula.data.corpus import load_corpus
from curricula.evaluation import build as tb
from curricula.evaluation import tasks as tasks_mod
from curricula.evaluation.tasks import CLOZE, MULTIPLE_CHOICE, get_task, load_task_file

EXPECTED = {
    "lastword_prose": CLOZE,
    "lastword_conversational": CLOZE,
    "nextline_prose": MULTIPLE_CHOICE,
    "nextline_technical": MULTIPLE_CHOICE,
    "nextline_legal": MULTIPLE_CHOICE,
    "nextline_reference": MULTIPLE_CHOICE,
    "nextline_science": MULTIPLE_CHOICE,
    "codeline": MULTIPLE_CHOICE,
}
TASK_DOMAIN = {
    "lastword_prose": "prose",
    "lastword_conversational": "conversational",
    **{f"nextline_{d}": d for d in tb.NEXTLINE_DOMAINS},
    "codeline": "code",
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("taskbuild")
    build_from_sample(root / "corpus")
    corpus = root / "corpus" / "en"
    paths = tb.build_tasks(corpus, root / "tasks", max_examples=60)
    val = load_corpus(corpus)["validation"]
    docs = {d: (t, dom) for t, dom, d in zip(val["text"], val["domain"], val["doc_id"])}
    return root, corpus, paths, docs


def _doc_of(example_id: str, task: str) -> str:
    assert example_id.startswith(task + "/")
    doc_id, n = example_id[len(task) + 1 :].rsplit("/", 1)
    assert n.isdigit()
    return doc_id


def _lines_by_doc(docs, domain):
    return {d: {ln.rstrip() for ln in t.split("\n")} for d, (t, dom) in docs.items() if dom == domain}


def test_all_tasks_written_and_load(built):
    _, _, paths, _ = built
    assert set(paths) == set(EXPECTED)
    for task, path in paths.items():
        assert path.name == f"{task}.jsonl" and path.exists()
        examples = load_task_file(path, kind=EXPECTED[task])
        assert 10 <= len(examples) <= 60, (task, len(examples))
        assert len({_doc_of(ex.id, task) for ex in examples}) >= 2, task  # spread over documents


def test_multiple_choice_tasks(built):
    _, _, paths, docs = built
    for task, kind in EXPECTED.items():
        if kind != MULTIPLE_CHOICE:
            continue
        lines = _lines_by_doc(docs, TASK_DOMAIN[task])
        for ex in load_task_file(paths[task]):
            doc_id = _doc_of(ex.id, task)
            assert docs[doc_id][1] == TASK_DOMAIN[task]
            assert len(ex.choices) == 4 and 0 <= ex.answer < 4
            assert len({c.strip() for c in ex.choices}) == 4, ex
            true = ex.choices[ex.answer]
            assert true in lines[doc_id]
            # the context ends with (the tail of) a line of the same document; it is cut to 600 characters
            last = ex.context.rstrip("\n").split("\n")[-1]
            assert ex.context.endswith("\n") and len(ex.context) <= 600
            assert any(ln.endswith(last) for ln in lines[doc_id])
            for j, choice in enumerate(ex.choices):
                if j == ex.answer:
                    continue
                owners = [d for d, ls in lines.items() if choice in ls]
                assert owners, (task, choice)
                assert any(d != doc_id for d in owners), (task, choice)  # same domain, another document
            if task == "codeline":
                assert all(not re.fullmatch(r"[\s{}()\[\];,]*", c) for c in ex.choices)


def test_answers_are_not_always_first(built):
    _, _, paths, _ = built
    answers = [ex.answer for ex in load_task_file(paths["nextline_legal"])]
    assert len(set(answers)) > 1


def test_cloze_targets(built):
    _, _, paths, docs = built
    for task in ("lastword_prose", "lastword_conversational"):
        for ex in load_task_file(paths[task]):
            doc_id = _doc_of(ex.id, task)
            text, domain = docs[doc_id]
            assert domain == TASK_DOMAIN[task]
            assert re.fullmatch(r"[A-Za-z]{3,}", ex.target), ex.target
            assert ex.context.endswith(" ") and not ex.context[:-1].endswith("\n")
            assert 0 < len(ex.context) <= 600
            whole = ex.context + ex.target
            at = text.find(whole)
            assert at >= 0, ex.id
            after = text[at + len(whole) : at + len(whole) + 1]
            assert not after.isalnum(), ex.id  # the target is a whole word, the last of its line
            line_no = int(ex.id.rsplit("/", 1)[1])
            line = text.split("\n")[line_no]
            assert len(line.split()) >= 8 and ex.target in line.split()[-1]


def test_deterministic_and_seed_dependent(built, tmp_path):
    _, corpus, paths, _ = built
    again = tb.build_tasks(corpus, tmp_path / "again", max_examples=60)
    assert set(again) == set(paths)
    for task in paths:
        assert again[task].read_bytes() == paths[task].read_bytes(), task
    other = tb.build_tasks(corpus, tmp_path / "seed1", seed=1, max_examples=60)
    assert any(other[t].read_bytes() != paths[t].read_bytes() for t in paths)


def test_n_choices_and_register(built, tmp_path, monkeypatch):
    monkeypatch.setattr("curricula.evaluation.tasks.TASKS", {})  # leave the real registry untouched
    _, corpus, _, _ = built
    paths = tb.build_tasks(corpus, tmp_path / "two", max_examples=5, n_choices=2)
    assert all(len(load_task_file(p)) <= 5 for p in paths.values())
    assert all(len(ex.choices) == 2 for ex in load_task_file(paths["codeline"]))
    specs = tb.register_built_tasks(tmp_path / "two")
    assert set(specs) == set(EXPECTED)
    for name, kind in EXPECTED.items():
        spec = get_task(name)
        assert spec is tasks_mod.TASKS[name] and spec.kind == kind and spec.description
        assert spec.path == str(paths[name])
        assert spec.load()
    with pytest.raises(ValueError):
        tb.build_tasks(corpus, tmp_path / "bad", n_choices=1)


# --------------------------------------------------------------------------- Hub converters on hand-made rows


def test_hellaswag_row():
    row = {
        "ind": 24,
        "activity_label": "Roof shingle removal",
        "ctx_a": "A man is sitting on a roof.",
        "ctx_b": "he",
        "ctx": "A man is sitting on a roof. he",
        "endings": [
            "is using wrap to wrap a pair of skis.",
            "is ripping level tiles off.",
            "is holding a rubik's cube.",
            "starts pulling up roofing on a roof.",
        ],
        "source_id": "activitynet~v_-JhWjGDPHMY",
        "split": "val",
        "split_type": "indomain",
        "label": "3",
    }
    ex = tb.hellaswag_example(row)
    assert ex.id == "hellaswag/24" and ex.answer == 3
    assert ex.context == "Roof shingle removal: A man is sitting on a roof. He"
    assert ex.choices[3] == " starts pulling up roofing on a roof." and len(ex.choices) == 4
    wikihow = dict(row, ctx_a="[header] How to clean [title] Step one.", label="0")
    assert "[" not in tb.hellaswag_example(wikihow).context
    with pytest.raises(ValueError, match="unlabeled"):
        tb.hellaswag_example(dict(row, label=""))


def test_piqa_row():
    row = {"goal": "How do I ready a guinea pig cage?", "sol1": "Use newspaper.", "sol2": "Use sand.", "label": 0}
    ex = tb.piqa_example(row, 7)
    assert ex.id == "piqa/7" and ex.answer == 0
    assert ex.context == "Question: How do I ready a guinea pig cage?\nAnswer:"
    assert ex.choices == (" Use newspaper.", " Use sand.")
    with pytest.raises(ValueError):
        tb.piqa_example(dict(row, label=-1))


def test_arc_row():
    row = {
        "id": "Mercury_7175875",
        "question": "An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most "
        "likely effect of this increase in rotation?",
        "choices": {
            "text": ["Planetary density will decrease.", "Planetary years will become longer.",
                     "Planetary days will become shorter.", "Planetary gravity will become stronger."],
            "label": ["A", "B", "C", "D"],
        },
        "answerKey": "C",
    }
    ex = tb.arc_example(row)
    assert ex.id == "arc/Mercury_7175875" and ex.answer == 2
    assert ex.choices[2] == " Planetary days will become shorter."
    assert ex.context.startswith("Question: An astronomer") and ex.context.endswith("\nAnswer:")
    numeric = dict(row, choices={"text": ["a", "b", "c"], "label": ["1", "2", "3"]}, answerKey="2")
    assert tb.arc_example(numeric).answer == 1
    with pytest.raises(ValueError):
        tb.arc_example(dict(row, answerKey="E"))


def test_lambada_row(tmp_path):
    row = {"text": "she was going to miss him so much . she had known him for years , and now he was gone , said "
                   "the old woman to her granddaughter"}
    ex = tb.lambada_example(row, 3)
    assert ex.id == "lambada/3" and ex.target == "granddaughter"
    assert ex.context.endswith("to her ") and ex.context + ex.target == row["text"]
    with pytest.raises(ValueError):
        tb.lambada_example({"text": "word"})
    # converted examples round-trip through the task file format
    path = tb.write_examples([ex, tb.lambada_example({"text": "a b cat"}, 4)], tmp_path / "lambada.jsonl")
    assert [e.target for e in load_task_file(path)] == ["granddaughter", "cat"]


def test_adapters_call_load_dataset(monkeypatch):
    import datasets

    calls = []
    rows = {
        "ybisk/piqa": [{"goal": "g", "sol1": "a", "sol2": "b", "label": 1}],
        "EleutherAI/lambada_openai": [{"text": "the quick brown fox"}],
    }

    def fake_load_dataset(name, *args, split=None, **kwargs):
        calls.append((name, args, split))
        return rows[name]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    assert tb.hub_task_adapters.piqa("validation")[0].answer == 1
    assert tb.hub_task_adapters.lambada("test")[0].target == "fox"
    assert calls == [("ybisk/piqa", (), "validation"), ("EleutherAI/lambada_openai", ("en",), "test")]
