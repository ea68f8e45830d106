"""Zero-shot tasks at every evaluation (``hf_trainer_ext/task_eval.py``), through the trainer. Unit tests of
``TaskEvaluator`` below."""

import json
from types import SimpleNamespace

import torch

from curricula.evaluation.tasks import register_task
from hf_trainer_ext.task_eval import TaskEvaluator


def test_tasks_are_scored_at_every_evaluation(tmp_path, blocks, targs, tiny_gpt2):
    from curricula.data.tokenizers import train_bpe
    from hf_trainer_ext import CurriculumTrainer

    train_bpe(["abc def ghi", "jkl mno pqr"] * 20, tmp_path / "tok", vocab_size=270)
    f = tmp_path / "mc.jsonl"
    f.write_text("\n".join(json.dumps({"id": str(i), "context": "abc", "choices": [" def", " xyz"], "answer": 0})
                           for i in range(4)))
    ds = blocks()
    args = targs(tmp_path / "run", max_steps=2, eval_strategy="steps", eval_steps=1,
                 eval_tasks=str(f), eval_tokenizer=str(tmp_path / "tok"))
    model = tiny_gpt2()
    model.resize_token_embeddings(270)  # the task tokenizer's vocabulary
    tr = CurriculumTrainer(model=model, args=args, train_dataset=ds, eval_dataset=ds.select(range(8)))
    tr.train()
    logged = [h for h in tr.state.log_history if "eval_task/mc/accuracy" in h]
    assert len(logged) == 2 and all(0.0 <= h["eval_task/mc/accuracy"] <= 1.0 for h in logged)
    assert any("eval_loss" in h for h in tr.state.log_history)  # Trainer's own evaluation still logged


# ---- TaskEvaluator on its own ----------------------------------------------------------------------------------------


class Always(torch.nn.Module):
    """A 'language model' over GPT-2's tokens that always puts nearly all probability on one token."""

    config = SimpleNamespace(n_positions=64)

    def __init__(self, token: int, vocab: int = 50257):
        super().__init__()
        self.token, self.vocab = token, vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        logits = torch.full((*input_ids.shape, self.vocab), -20.0) + self.dummy
        logits[..., self.token] = 20.0
        return SimpleNamespace(logits=logits)


def test_no_tasks_score_nothing():
    assert TaskEvaluator(None, None, 8).scores(model=None) == {}
    assert TaskEvaluator("", "gpt2", 8).scores(model=None) == {}
    evaluator = TaskEvaluator.from_args(SimpleNamespace(per_device_eval_batch_size=4))  # plain TrainingArguments
    assert (evaluator.spec, evaluator.tokenizer_spec, evaluator.batch_size) == (None, None, 4)
    assert evaluator.scores(model=None) == {}


def test_task_files_and_registered_tasks_are_scored_and_loaded_once(tmp_path, monkeypatch):
    from curricula.data.tokenizers import load_tokenizer

    monkeypatch.setattr("curricula.evaluation.tasks.TASKS", {})  # leave the real registry untouched
    the = load_tokenizer("gpt2").encode(" the")
    assert len(the) == 1
    rows = [{"id": "a", "context": "I saw", "choices": [" the", " cat"], "answer": 0},  # the model's choice
            {"id": "b", "context": "I saw", "choices": [" the", " cat"], "answer": 1}]  # not the model's choice
    (tmp_path / "pick.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "right.jsonl").write_text(json.dumps(rows[0]) + "\n")
    register_task("toy", tmp_path / "right.jsonl", "multiple_choice")
    evaluator = TaskEvaluator(f"{tmp_path / 'pick.jsonl'}, toy", "gpt2", batch_size=2)
    expected = {"eval_task/pick/accuracy": 0.5, "eval_task/pick/accuracy_norm": 0.5,
                "eval_task/toy/accuracy": 1.0, "eval_task/toy/accuracy_norm": 1.0}
    assert evaluator.scores(Always(the[0])) == expected
    (tmp_path / "pick.jsonl").unlink()  # loaded once: later evaluations do not read the files again
    (tmp_path / "right.jsonl").unlink()
    assert evaluator.scores(Always(the[0]), prefix="test") == {k.replace("eval", "test", 1): v
                                                                for k, v in expected.items()}
