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

from dataclasses import dataclass
from typing import Any

import numpy as np

from curricula.errors import ConfigError, CurriculaError
from curricula.mixing.mixer import MixingError, check_weights

STATE_FORMAT = "curricula-doremi-state/1"


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


# ---- what a recipe says ------------------------------------------------------------------------------------------


@dataclass
class GroupDROOptions:
    """The Group-DRO update's settings, shared by the proxy and the one-run method. ``initial_excess`` and
    ``average_includes_initial`` are the official code's two conventions (``initial_excess: log_vocab`` = log|V|,
    ``average_includes_initial: true``); the defaults start unseen domains at 0 and average the updates only."""

    eta: float = 1.0
    smoothing: float = 1e-3
    initial_excess: Any = 0.0  # a number >= 0, or "log_vocab"
    average_includes_initial: bool = False

    def __post_init__(self):
        if isinstance(self.initial_excess, str) and self.initial_excess != "log_vocab":
            raise ConfigError(f"initial_excess={self.initial_excess!r}: give a number >= 0 or 'log_vocab' (log|V|, "
                              "the official DoReMi code's start)")
        if not isinstance(self.average_includes_initial, bool):
            raise ConfigError(f"average_includes_initial={self.average_includes_initial!r} must be true or false")
        self.dro_config(vocab_size=2)  # check eta, smoothing and a numeric initial_excess now, before any data work

    def dro_config(self, vocab_size: int | None = None, initial_weights: np.ndarray | None = None) -> DoReMiConfig:
        excess = self.initial_excess
        if excess == "log_vocab":
            if not vocab_size:
                raise ConfigError("initial_excess: log_vocab needs the tokenizer's vocab_size in the packed data's "
                                  "tokenizer identity; give a number instead")
            excess = float(np.log(vocab_size))
        try:
            return DoReMiConfig(eta=self.eta, smoothing=self.smoothing, initial_weights=initial_weights,
                                initial_excess=float(excess), average_includes_initial=self.average_includes_initial)
        except (ValueError, TypeError) as err:
            raise ConfigError(str(err)) from None


def require_tokenizer(data, method: str) -> None:
    if not data.tokenizer or "vocab_sha256" not in data.tokenizer:
        raise ConfigError(
            f"{method} needs the packed data's tokenizer identity: DoReMi weights are specific to a tokenizer and "
            "the weights file is stamped with it; pass tokenizer_identity=read_meta(packed)['tokenizer'] (or a "
            "PackedData) to the trainer"
        )
