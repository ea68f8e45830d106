"""Per-domain perplexity with a uniform average and the worst case.

Self-contained ``evaluate`` metric module: load it by local path, which works with
``HF_HUB_OFFLINE=1``::

    import evaluate
    from curricula.metrics import metric_path
    ppl = evaluate.load(metric_path("domain_perplexity"))
    ppl.compute(loss=[2.1, 2.3], tokens=[512, 100], domain=["web", "code"])

Each input row is one scored block/sequence: ``loss`` is its mean token negative
log-likelihood (natural log), ``tokens`` the number of tokens it was averaged over and
``domain`` a name. Per domain the NLLs are averaged weighted by tokens (so the result is
the same as scoring all of the domain's tokens at once) and exponentiated.
"""

import math

import datasets
import evaluate


class DomainPerplexityInputError(ValueError):
    """Input the metric cannot score (per-domain losses); the message names the row. An ``evaluate`` metric script is loaded
    on its own, so it does not import curricula's error classes."""

_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    loss: mean token NLL (nats) of each block, float.
    tokens: number of scored tokens in each block, int > 0.
    domain: domain name of each block, str.
Returns:
    perplexity: {domain: exp(token-weighted mean NLL)}.
    uniform_average: mean of the per-domain perplexities (each domain weighs the same).
    worst_case: the largest per-domain perplexity.
    tokens: {domain: total scored tokens}.
"""


class DomainPerplexity(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "loss": datasets.Value("float64"),
                    "tokens": datasets.Value("int64"),
                    "domain": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, loss, tokens, domain):
        if not loss:
            raise DomainPerplexityInputError("domain_perplexity: no blocks to score (empty input)")
        nll_sum: dict = {}
        count: dict = {}
        for i, (value, n, name) in enumerate(zip(loss, tokens, domain)):
            if n is None or n <= 0:
                raise DomainPerplexityInputError(f"domain_perplexity: row {i} (domain {name!r}) has tokens={n}; it must be > 0")
            if value is None or not math.isfinite(value):
                raise DomainPerplexityInputError(f"domain_perplexity: row {i} (domain {name!r}) has a non-finite loss {value!r}")
            nll_sum[name] = nll_sum.get(name, 0.0) + float(value) * int(n)
            count[name] = count.get(name, 0) + int(n)
        perplexity = {name: math.exp(nll_sum[name] / count[name]) for name in sorted(nll_sum)}
        values = list(perplexity.values())
        return {
            "perplexity": perplexity,
            "uniform_average": sum(values) / len(values),
            "worst_case": max(values),
            "tokens": {name: count[name] for name in sorted(count)},
        }
