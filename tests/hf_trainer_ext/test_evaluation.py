"""Log-likelihood scoring of multiple-choice and cloze tasks, on a model whose answers are known."""

import json
from types import SimpleNamespace

import pytest
import torch

from curricula.evaluation.tasks import ClozeExample, MultipleChoiceExample, load_task_file
from hf_trainer_ext.evaluation import continuation_logprobs, score_task


class NextByte(torch.nn.Module):
    """A 'language model' over bytes whose next token is always the previous byte + 1 (log-prob ~0 for it)."""

    config = SimpleNamespace(n_positions=64)

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, attention_mask=None):
        logits = torch.full((*input_ids.shape, 256), -20.0) + self.dummy
        logits.scatter_(-1, ((input_ids + 1) % 256)[..., None], 20.0)
        return SimpleNamespace(logits=logits)


class Bytes:
    eos_id = 0

    def encode(self, text):
        return list(text.encode("latin-1"))


def test_multiple_choice_forced_answer_and_length_normalisation():
    examples = [
        MultipleChoiceExample("q1", "abc", ("d", "x", "q"), 0),  # "d" follows "c": the forced answer
        MultipleChoiceExample("q2", "abc", ("zz", "defg"), 1),  # "defg" is 4 greedy steps: highest, also per char
        MultipleChoiceExample("q3", "klm", ("x", "no"), 0),  # wrong on purpose: the model prefers "no"
    ]
    result = score_task(NextByte(), Bytes(), examples)
    assert result["accuracy"] == pytest.approx(2 / 3) and result["accuracy_norm"] == pytest.approx(2 / 3)
    assert result["n"] == 3 and result["kind"] == "multiple_choice"


def test_continuation_logprobs_are_exact():
    (lp_good, greedy_good), (lp_bad, greedy_bad) = continuation_logprobs(
        NextByte(), [(list(b"ab"), list(b"cd")), (list(b"ab"), list(b"x"))])
    step = -torch.log1p(torch.tensor(255.0) * torch.exp(torch.tensor(-40.0))).item()  # log p of the +1 byte
    assert lp_good == pytest.approx(2 * step, abs=1e-6) and greedy_good
    assert lp_bad == pytest.approx(-40 + step, abs=1e-4) and not greedy_bad


def test_cloze_is_greedy_match():
    examples = [ClozeExample("c1", "abc", "def"), ClozeExample("c2", "abc", "dex"), ClozeExample("c3", "pq", "r")]
    result = score_task(NextByte(), Bytes(), examples)
    assert result["accuracy"] == pytest.approx(2 / 3) and result["kind"] == "cloze"


def test_task_file_round_trip(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps({"id": "a", "context": "abc", "choices": ["d", "x"], "answer": 0}) + "\n")
    result = score_task(NextByte(), Bytes(), load_task_file(f))
    assert result["accuracy"] == 1.0
