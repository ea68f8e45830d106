"""``evaluate`` metric modules shipped with curricula, loaded by local path.

Each metric is a folder ``curricula/metrics/<name>/<name>.py`` holding an
``evaluate.Metric`` subclass. Loading by path works with ``HF_HUB_OFFLINE=1``
(Hub metric names such as ``"accuracy"`` do not)::

    from curricula.metrics import load_metric, metric_path
    ppl = load_metric("domain_perplexity")           # or evaluate.load(metric_path(...))
"""

from __future__ import annotations

import os

from curricula.errors import CurriculaError, MissingFileError


class UnknownMetricError(CurriculaError, KeyError):
    """A metric name curricula does not ship."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""

_HERE = os.path.dirname(os.path.abspath(__file__))

METRICS = ("cloze", "domain_perplexity", "multiple_choice")


def _check(name: str) -> None:
    if name not in METRICS:
        raise UnknownMetricError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}")


def metric_path(name: str) -> str:
    """Folder of the metric module ``name``, for ``evaluate.load(metric_path(name))``."""
    _check(name)
    path = os.path.join(_HERE, name)
    if not os.path.isfile(os.path.join(path, f"{name}.py")):
        raise MissingFileError(f"metric module {name!r} is missing: {path}/{name}.py (broken install?)")
    return path


def load_metric(name: str, **kwargs):
    """``evaluate.load`` of a shipped metric by local path; ``kwargs`` go to ``evaluate.load``."""
    import evaluate

    return evaluate.load(metric_path(name), **kwargs)


__all__ = ["METRICS", "load_metric", "metric_path"]
