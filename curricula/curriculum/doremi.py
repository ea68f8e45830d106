"""DoReMi's domain-weight update (Group DRO; Xie et al. 2023, Algorithm 1), the weights file, and a convergence metric.

The update, once per optimizer step, from the per-domain excess loss of the proxy over the reference model::

    lambda_d = sum over domain-d tokens of max(l_proxy - l_ref, 0) / number of domain-d tokens   (global batch)
    log alpha <- log alpha + eta * lambda        (alpha: the previous, smoothed weights)
    alpha <- softmax(log alpha)                  (log-sum-exp normalisation)
    alpha <- (1 - c) * alpha + c / k             (smoothing towards uniform)
    average <- mean of alpha over all updates so far

What the caller must get right (the hazards of the published implementations):

- The clip is **per token, before summing** (``max(l_proxy - l_ref, 0)`` for each token); clipping a per-domain mean
  is a different estimator. So ``update`` receives sums of already-clipped values and refuses a negative sum.
- The sums and counts are over the **global** batch (all processes, all gradient-accumulation micro-batches), so every
  process holds the same inputs and computes identical weights; nothing here communicates.
- A domain absent from the batch (count 0) keeps its previous lambda, as in the official code. Here it starts at 0
  (``initial_excess``); the official code starts it at log|V|, which strongly favours a domain until it is first seen.
- DoReMi's output is ``average`` (the running mean of alpha), not the last alpha. Here it averages the updates only;
  the official code also counts the initial weights as one term (``average_includes_initial``). Both conventions are
  options so that the official numbers can be reproduced exactly.
- Weights are tokenizer-specific (the excess loss is per token), so the weights file records the tokenizer identity
  and ``read_weights_json`` refuses a file computed with another vocabulary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curricula.errors import CurriculaError
from curricula.curriculum.mixing import MixingError, check_weights

STATE_FORMAT = "curricula-doremi-state/1"
WEIGHTS_FORMAT = "curricula-domain-weights/1"


class DoReMiError(CurriculaError):
    """Invalid DoReMi input, state or weights file; the message names the problem and the fix."""


# The official code's two conventions, at this library's defaults; a state or run record without them predates them
CONVENTION_DEFAULTS = {"initial_excess": 0.0, "average_includes_initial": False}


@dataclass
class DoReMiConfig:
    eta: float = 1.0  # step size of the exponentiated-gradient update (official default 1.0)
    smoothing: float = 1e-3  # c: mix with uniform after each update (the official scripts use 1e-3)
    initial_weights: np.ndarray | None = None  # uniform if None
    initial_excess: float = 0.0  # lambda of a domain before it is first seen (official code: log|V|)
    average_includes_initial: bool = False  # count the initial weights as one term of the average (official code)

    def __post_init__(self):
        if not np.isfinite(self.initial_excess) or self.initial_excess < 0:
            raise DoReMiError(f"initial_excess={self.initial_excess!r} must be a finite number >= 0 (0, or log|V| as "
                              "in the official code)")
        if not (np.isfinite(self.eta) and self.eta >= 0):
            raise DoReMiError(f"eta={self.eta!r} must be a finite number >= 0 (DoReMi uses 1.0)")
        if not (np.isfinite(self.smoothing) and 0 <= self.smoothing <= 1):
            raise DoReMiError(f"smoothing={self.smoothing!r} must be in [0, 1] (DoReMi uses 1e-3)")


def _vector(x, n: int, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.shape != (n,):
        raise DoReMiError(f"{what} has shape {a.shape}; give one value per domain, shape ({n},)")
    if not np.all(np.isfinite(a)):
        i = int(np.flatnonzero(~np.isfinite(a))[0])
        raise DoReMiError(f"{what} of domain {i} is {a[i]}; a non-finite loss upstream (check the model's losses)")
    return a


class GroupDROWeights:
    """The DoReMi domain weights: ``weights`` (current alpha, for the proxy's weighted loss), ``average`` (running mean
    of alpha over all updates: DoReMi's output), ``excess`` (latest per-domain lambda) and ``steps`` (updates done).
    Before the first update ``average`` equals the initial weights."""

    def __init__(self, n_domains: int, config: DoReMiConfig):
        if not isinstance(n_domains, (int, np.integer)) or isinstance(n_domains, bool) or n_domains < 1:
            raise DoReMiError(f"n_domains={n_domains!r} must be a positive integer")
        self.n_domains = int(n_domains)
        self.config = config
        if config.initial_weights is None:
            w = np.full(self.n_domains, 1.0 / self.n_domains)
        else:
            try:
                w = check_weights(config.initial_weights)
            except MixingError as e:
                raise DoReMiError(f"initial_weights: {e}") from None
            if w.size != self.n_domains:
                raise DoReMiError(
                    f"initial_weights has {w.size} entries for {self.n_domains} domains; give one per domain"
                )
        self.weights: np.ndarray = w
        self.average: np.ndarray = w.copy()
        self.excess: np.ndarray = np.full(self.n_domains, float(config.initial_excess))
        self.steps: int = 0

    def update(self, excess_sum: np.ndarray, token_count: np.ndarray) -> np.ndarray:
        """Per-domain sums over the GLOBAL batch of per-token clipped excess losses max(l_proxy - l_ref, 0) and their
        token counts.

        lambda_d = excess_sum_d / token_count_d; a domain with token_count 0 keeps its previous lambda (initially
        ``initial_excess``); log alpha <- log alpha + eta * lambda; normalise (log-sum-exp); alpha <- (1-c) alpha + c/k;
        average <- running mean including this step (and the initial weights if ``average_includes_initial``);
        return alpha (a copy)."""
        k = self.n_domains
        s = _vector(excess_sum, k, "excess_sum")
        n = _vector(token_count, k, "token_count")
        if np.any(s < 0):
            i = int(np.flatnonzero(s < 0)[0])
            raise DoReMiError(
                f"excess_sum of domain {i} is negative ({s[i]}); DoReMi clips the excess loss per token, "
                "max(l_proxy - l_ref, 0), before summing, so the sums are never negative: clip per token upstream"
            )
        if np.any(n < 0):
            i = int(np.flatnonzero(n < 0)[0])
            raise DoReMiError(f"token_count of domain {i} is negative ({n[i]}); pass the number of counted tokens")
        if np.any((n == 0) & (s != 0)):
            i = int(np.flatnonzero((n == 0) & (s != 0))[0])
            raise DoReMiError(
                f"domain {i} has excess_sum {s[i]} but token_count 0; the sums and counts must come from the same "
                "tokens (mask padding and ignored labels in both)"
            )
        present = n > 0
        lam = self.excess.copy()
        lam[present] = s[present] / n[present]
        with np.errstate(divide="ignore"):  # a zero initial weight has log -inf; it stays 0 until smoothed
            z = np.log(self.weights) + self.config.eta * lam
        z -= z[np.isfinite(z)].max()
        alpha = np.exp(z)
        alpha /= alpha.sum()
        c = self.config.smoothing
        alpha = (1.0 - c) * alpha + c / k
        self.steps += 1
        self.excess = lam
        self.weights = alpha
        terms = self.steps + 1 if self.config.average_includes_initial else self.steps  # terms in the mean
        self.average = (self.average * (terms - 1) + alpha) / terms if terms > 1 else alpha.copy()
        return alpha.copy()

    # ---- persistence --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """JSON-able; floats are written by ``json`` as shortest round-trip reprs, so a reload is bit-exact."""
        return {
            "format": STATE_FORMAT,
            "n_domains": self.n_domains,
            "eta": float(self.config.eta),
            "smoothing": float(self.config.smoothing),
            "initial_excess": float(self.config.initial_excess),
            "average_includes_initial": bool(self.config.average_includes_initial),
            "steps": self.steps,
            "weights": [float(x) for x in self.weights],
            "average": [float(x) for x in self.average],
            "excess": [float(x) for x in self.excess],
        }

    def load_state_dict(self, d: dict) -> None:
        if d.get("format") != STATE_FORMAT:
            raise DoReMiError(
                f"not a DoReMi state (format {d.get('format')!r}, expected {STATE_FORMAT!r}); "
                "resume from a checkpoint written by this version of curricula"
            )
        if d.get("n_domains") != self.n_domains:
            raise DoReMiError(
                f"the DoReMi state has {d.get('n_domains')} domains, this run has {self.n_domains}; "
                "resume with the same domains"
            )
        for key in ("eta", "smoothing", *CONVENTION_DEFAULTS):
            if d.get(key, CONVENTION_DEFAULTS.get(key)) != getattr(self.config, key):
                raise DoReMiError(
                    f"the DoReMi state was saved with {key}={d.get(key)!r}, this run has "
                    f"{key}={getattr(self.config, key)!r}; resume with the same DoReMi config"
                )
        steps = d.get("steps")
        if not isinstance(steps, int) or steps < 0:
            raise DoReMiError(f"DoReMi state 'steps' must be a non-negative integer, got {steps!r}")
        keys = ("weights", "average", "excess")
        arrays = {key: _vector(d.get(key), self.n_domains, f"state {key!r}") for key in keys}
        self.steps = steps
        self.weights, self.average, self.excess = arrays["weights"], arrays["average"], arrays["excess"]


# ---- weights file ---------------------------------------------------------------------------------------------------


def _identity_dict(identity) -> dict:
    """A tokenizer identity as a dict: accepts a dict or an object with ``to_dict()`` (``TokenizerIdentity``)."""
    if isinstance(identity, dict):
        return dict(identity)
    if hasattr(identity, "to_dict"):
        return identity.to_dict()
    raise DoReMiError(
        f"tokenizer_identity must be a dict or a TokenizerIdentity, got {type(identity).__name__}; "
        "pass tokenizer.identity"
    )


def _check_names(domain_names) -> list[str]:
    names = [str(x) for x in domain_names]
    if len(set(names)) != len(names):
        raise DoReMiError(f"domain names {names} repeat; give each domain a distinct name")
    return names


def weights_json(weights, domain_names, tokenizer_identity: dict, extra: dict | None = None) -> dict:
    """The weights file's content: domains in order, weight per domain, the tokenizer identity (DoReMi weights are
    tokenizer-specific) and caller metadata under ``extra`` (eta, steps, proxy model, ...)."""
    names = _check_names(domain_names)
    try:
        w = check_weights(weights, names)
    except MixingError as e:
        raise DoReMiError(str(e)) from None
    tok = _identity_dict(tokenizer_identity)
    if not tok.get("vocab_sha256"):
        raise DoReMiError("tokenizer_identity has no 'vocab_sha256'; pass tokenizer.identity (or its to_dict())")
    return {
        "format": WEIGHTS_FORMAT,
        "domains": names,
        "weights": {name: float(x) for name, x in zip(names, w)},
        "tokenizer": tok,
        "extra": dict(extra or {}),
    }


def read_weights_json(path, domain_names, tokenizer_identity=None) -> np.ndarray:
    """Weights from a file written from ``weights_json`` (or a plain ``{domain: weight}`` object, as the official
    DoReMi writes), in the order of ``domain_names``. The file must name exactly these domains. With
    ``tokenizer_identity`` the file's tokenizer must have the same ``vocab_sha256``."""
    path = Path(path)
    names = _check_names(domain_names)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DoReMiError(f"cannot read domain weights from {path}: {e}") from None
    if not isinstance(data, dict):
        raise DoReMiError(f"{path} is not a domain-weights object ({{domain: weight}} or a curricula weights file)")
    table = data.get("weights") if "format" in data else data
    if not isinstance(table, dict):
        raise DoReMiError(f"{path} has no 'weights' object mapping domain names to weights")
    missing = [x for x in names if x not in table]
    unknown = [x for x in table if x not in names]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unknown:
            parts.append(f"extra {unknown}")
        raise DoReMiError(
            f"{path} has weights for other domains than this run ({'; '.join(parts)}); the weights must be computed "
            "on the same domain set: rerun DoReMi on these domains or fix the domain list"
        )
    if tokenizer_identity is not None:
        want = _identity_dict(tokenizer_identity)
        have = data.get("tokenizer") if "format" in data else None
        if not isinstance(have, dict) or not have.get("vocab_sha256"):
            raise DoReMiError(
                f"{path} records no tokenizer, so it cannot be checked against {want.get('name')!r}; DoReMi weights "
                "are tokenizer-specific: use weights written by weights_json, or pass tokenizer_identity=None to "
                "skip the check"
            )
        if have["vocab_sha256"] != want.get("vocab_sha256"):
            raise DoReMiError(
                f"{path} was computed with tokenizer {have.get('name')!r} (vocab_sha256 {have['vocab_sha256']}), "
                f"this run uses {want.get('name')!r} (vocab_sha256 {want.get('vocab_sha256')}); DoReMi weights are "
                "tokenizer-specific (the excess loss is per token): recompute them with this tokenizer"
            )
    try:
        return check_weights([table[x] for x in names], names)
    except MixingError as e:
        raise DoReMiError(f"{path}: {e}") from None


def write_weights_json(path, content: dict) -> Path:
    """Write ``weights_json(...)`` output atomically (``curricula.run_layout``)."""
    from curricula.run_layout import write_json

    return write_json(path, content)


def l1_change(a, b) -> float:
    """sum |a - b|: how far the weights moved (e.g. between DoReMi rounds; 0 = converged)."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise DoReMiError(f"l1_change needs two 1-D weight vectors of the same length, got {x.shape} and {y.shape}")
    return float(np.abs(x - y).sum())
