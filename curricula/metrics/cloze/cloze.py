"""Cloze / last-word accuracy (LAMBADA-style).

Self-contained ``evaluate`` metric module, loaded by local path (works offline)::

    cloze = evaluate.load(metric_path("cloze"))
    cloze.compute(predictions=["dog"], references=[" dog\\n"])            # {"accuracy": 1.0}
    cloze.compute(predictions=["Dog"], references=["dog"], ignore_case=True)

A prediction counts as correct when it equals the reference after stripping leading and
trailing whitespace from both (and lower-casing both when ``ignore_case=True``).
"""

import datasets
import evaluate


class ClozeInputError(ValueError):
    """Input the metric cannot score (cloze examples); the message names the row. An ``evaluate`` metric script is loaded
    on its own, so it does not import curricula's error classes."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: predicted word (str) per example, e.g. the greedy continuation.
    references: target word (str) per example.
    ignore_case: compare case-insensitively (default False).
Returns:
    accuracy: fraction of exact matches after stripping whitespace.
"""


class Cloze(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, ignore_case=False):
        if not references:
            raise ClozeInputError("cloze: no examples to score (empty input)")

        def norm(text):
            text = (text or "").strip()
            return text.lower() if ignore_case else text

        hits = sum(norm(p) == norm(r) for p, r in zip(predictions, references))
        return {"accuracy": hits / len(references)}
