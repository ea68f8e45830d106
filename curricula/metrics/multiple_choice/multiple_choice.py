"""Zero-shot multiple-choice accuracy from continuation log-likelihoods.

Self-contained ``evaluate`` metric module, loaded by local path (works offline)::

    mc = evaluate.load(metric_path("multiple_choice"))
    mc.compute(choice_logprobs=[[-3.0, -9.0]], choice_lengths=[[5, 5]], answer=[0])

Per question: ``choice_logprobs[j]`` is the summed log-likelihood of continuation ``j``
given the context, ``choice_lengths[j]`` its length (characters or tokens, > 0) and
``answer`` the index of the correct continuation.

- ``accuracy``: the prediction is ``argmax_j logprob_j`` (most likely continuation).
- ``accuracy_norm``: the prediction is ``argmax_j logprob_j / length_j`` (length-normalised).

Ties are broken by the lower index (the first maximum wins), so a question whose choices
all score the same is predicted as choice 0.
"""

import datasets
import evaluate


class MultipleChoiceInputError(ValueError):
    """Input the metric cannot score (choices and their log-likelihoods); the message names the row. An ``evaluate`` metric script is loaded
    on its own, so it does not import curricula's error classes."""

_KWARGS_DESCRIPTION = """
Args:
    choice_logprobs: list of float per question, summed log-likelihood of each choice.
    choice_lengths: list of int per question, length of each choice (> 0).
    answer: int per question, index of the correct choice.
Returns:
    accuracy: fraction of questions whose most likely choice is the answer.
    accuracy_norm: same with log-likelihood divided by choice length.
"""


def _first_argmax(values):
    best = 0
    for j in range(1, len(values)):
        if values[j] > values[best]:  # strict: ties keep the lower index
            best = j
    return best


class MultipleChoice(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "choice_logprobs": datasets.Sequence(datasets.Value("float64")),
                    "choice_lengths": datasets.Sequence(datasets.Value("int64")),
                    "answer": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, choice_logprobs, choice_lengths, answer):
        if not answer:
            raise MultipleChoiceInputError("multiple_choice: no questions to score (empty input)")
        correct = correct_norm = 0
        for i, (logprobs, lengths, gold) in enumerate(zip(choice_logprobs, choice_lengths, answer)):
            if not logprobs:
                raise MultipleChoiceInputError(f"multiple_choice: question {i} has no choices")
            if len(lengths) != len(logprobs):
                raise MultipleChoiceInputError(
                    f"multiple_choice: question {i} has {len(logprobs)} choice_logprobs "
                    f"but {len(lengths)} choice_lengths"
                )
            if not 0 <= gold < len(logprobs):
                raise MultipleChoiceInputError(
                    f"multiple_choice: question {i} has answer {gold}, out of range 0..{len(logprobs) - 1}"
                )
            if any(n <= 0 for n in lengths):
                raise MultipleChoiceInputError(f"multiple_choice: question {i} has a choice length <= 0: {list(lengths)}")
            correct += _first_argmax(logprobs) == gold
            correct_norm += _first_argmax([lp / n for lp, n in zip(logprobs, lengths)]) == gold
        total = len(answer)
        return {"accuracy": correct / total, "accuracy_norm": correct_norm / total}
