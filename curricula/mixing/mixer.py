"""Exact per-batch domain counts: which blocks make up each global batch when data is mixed from several domains.

Used for DoReMi-weighted sampling and for continual-pretraining replay (two "domains": new data and replayed old
data). One ``DomainMixer`` yields global batches (one optimizer step over all processes) of block ids. Everything is a
function of (seed, weights, pools, batch index) only, so every process computes the identical stream without
communicating, and a checkpoint of a few integers resumes it exactly.

Rules
-----
**Counts.** Domain ``d`` is owed ``q_d = batch_size * w_d`` slots per batch. It gets ``floor(q_d)`` every batch plus
at most one extra slot; the ``k = batch_size - sum(floor(q))`` extra slots of a batch go to domains with a fractional
quota, chosen by carried residuals ``r_d`` (owed minus given so far)::

    r_d += frac(q_d)                     # for every domain, once per batch
    eligible: r_d > 0                    # it is owed part of a slot
    order: eligible first, then by (1 - r_d) / frac(q_d) ascending (the batch at which its debt would reach one
           whole slot: earliest deadline first), then lower domain index
    the first k domains in that order get one extra slot; r_d -= 1 for each of them

So every batch sums exactly to ``batch_size``; a domain gets ``floor(q_d)`` or ``ceil(q_d)`` blocks in every batch; a
zero-weight domain never appears; and over the first ``m`` batches a domain's total stays within 1 of
``m * batch_size * w_d`` (``|r_d| < 1``).

*Why not plain largest remainder with a carry* (``r += q; c = floor(r)``, leftovers to the largest fractional parts):
a domain that just received an extra slot carries a negative residual, and ``floor`` can then give it
``floor(q_d) - 1`` slots, or -1. With weights (0.05, 0.05, 0.9) and batch size 1 it yields counts (1, -1, 1) at batch
index 51. Choosing the extras among the fractional domains keeps every count in {floor, ceil} by construction; the
bound ``|r_d| < 1`` is not proven here, but held in randomized checks of 35,000 weight vectors (2 to 40 domains,
batch sizes 1 to 512, 1,500 batches each; worst |r_d| 0.99999997), and ``tests/curricula/mixing/test_mixer.py`` checks it on 61.

*Exact arithmetic.* The quotas are computed once as integers in units of 2^-40 of a block (normalised by the exact sum
of the given weights, rounded by largest remainder so they add up to ``batch_size`` exactly; a positive weight smaller
than that unit gets no slots). Residuals are integers in those units, so they never drift and the checkpoint stores
them exactly.

**Streams.** Domain ``d`` draws its blocks without replacement from successive permutations of its pool: epoch ``e``
of domain ``d`` is ``np.random.default_rng([seed, d, e]).permutation(pool)``. When a domain runs out it starts its own
next epoch, also in the middle of a batch, so each pool element appears exactly once per domain epoch.

**Order inside a batch.** A batch is assembled in domain order (domain 0's blocks first) and then shuffled with
``np.random.default_rng([seed, 1_000_003, batch_index]).permutation``, so every per-device chunk the consumer cuts
from it gets a mix of domains.

**State.** Batch index, per-domain epoch and position, and the integer residuals. ``load_state_dict`` refuses a state
saved with another seed, batch size, weights or pools (it would silently give a different stream).

**Cost.** Per batch the count rule is a few Python operations per domain; block ids are gathered with numpy slices
(no per-block Python). ``skip(n)`` only runs the count rule and moves the stream positions arithmetically; it never
builds a permutation.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from curricula.errors import CurriculaError

FORMAT = "curricula-mixer/1"
SHUFFLE_KEY = 1_000_003  # second seed word of the within-batch shuffle (the per-domain streams use the domain index)
UNIT_BITS = 40
UNIT = 1 << UNIT_BITS  # quotas and residuals are integers in units of 1/UNIT of a block
WEIGHT_TOLERANCE = 1e-6


class MixingError(CurriculaError):
    """Invalid mixing weights, pools or state; the message names the problem and the fix."""


def _domain_label(i: int, names) -> str:
    return f"domain {i} ({names[i]!r})" if names is not None else f"domain {i}"


def check_weights(weights, names=None) -> np.ndarray:
    """Validated mixing weights as a float64 copy: 1-D, one per domain (when ``names`` are given), finite,
    non-negative, not all zero, summing to 1 within 1e-6."""
    try:
        w = np.array(weights, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise MixingError(f"weights {weights!r} are not a list of numbers ({e}); give one float per domain") from None
    if w.ndim != 1 or w.size == 0:
        raise MixingError(f"weights must be a non-empty 1-D list (one per domain), got shape {w.shape}")
    if names is not None and len(names) != w.size:
        raise MixingError(
            f"got {w.size} weights for {len(names)} domains {list(names)}; give exactly one weight per domain, "
            "in the same order"
        )
    bad = np.flatnonzero(~np.isfinite(w))
    if bad.size:
        i = int(bad[0])
        raise MixingError(f"weight of {_domain_label(i, names)} is {w[i]}; every weight must be a finite number")
    neg = np.flatnonzero(w < 0)
    if neg.size:
        i = int(neg[0])
        raise MixingError(
            f"weight of {_domain_label(i, names)} is negative ({w[i]}); weights must be >= 0 (use 0 to leave a "
            "domain out)"
        )
    total = float(w.sum())
    if total == 0:
        raise MixingError("all weights are zero; give at least one domain a positive weight")
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise MixingError(
            f"weights sum to {total!r}, not 1 (tolerance {WEIGHT_TOLERANCE}); normalise them first, "
            "e.g. w = w / w.sum()"
        )
    return w


def _quotas(w: np.ndarray, batch_size: int) -> list[int]:
    """``batch_size * w_d / sum(w)`` in units of 1/UNIT block, rounded by largest remainder (exact rationals; ties to
    the lower index) so that they sum to exactly ``batch_size * UNIT``; zero weights stay zero."""
    # the same exact rationals as Fraction arithmetic, in plain integers (10x faster: online weights change every
    # step): a float is m / 2^k, so over the common denominator 2^K every weight is an integer numerator
    ratios = [float(x).as_integer_ratio() for x in w]
    shift = max(d.bit_length() - 1 for _, d in ratios)
    num = [n << (shift - (d.bit_length() - 1)) for n, d in ratios]
    total, scale = sum(num), batch_size * UNIT
    a = [n * scale // total for n in num]  # floor (non-negative)
    rem = [n * scale - x * total for n, x in zip(num, a)]  # the fractional parts, times total
    short = scale - sum(a)
    order = sorted((i for i in range(len(a)) if num[i] > 0), key=lambda i: (-rem[i], i))
    for i in order[:short]:
        a[i] += 1
    return a


def _check_pools(pools, n: int, w: np.ndarray, names) -> list[np.ndarray]:
    if len(pools) != n:
        raise MixingError(f"got {len(pools)} pools for {n} weights; give one pool of block ids per domain")
    out = []
    for i, p in enumerate(pools):
        a = np.asarray(p)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise MixingError(
                f"pool of {_domain_label(i, names)} must be a 1-D integer array of block ids, got {a.dtype} {a.shape}"
            )
        if a.size == 0 and w[i] > 0:
            raise MixingError(
                f"{_domain_label(i, names)} has weight {w[i]} but an empty pool; give it blocks or weight 0"
            )
        a = a.astype(np.int64, copy=True)
        a.flags.writeable = False
        out.append(a)
    return out


@dataclass(eq=False)  # numpy fields: identity comparison
class DomainMixer:
    """Global batches of block ids mixed from several domains with exact per-batch counts (see the module docstring
    for the rules). ``next_batch`` / ``batches`` advance the stream; ``counts`` peeks; ``skip`` fast-forwards."""

    pools: list[np.ndarray]
    weights: np.ndarray
    batch_size: int
    seed: int
    names: list[str] | None = None
    _perm: dict[int, tuple[int, np.ndarray]] = field(default_factory=dict, init=False, repr=False)
    _digest: str | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        if self.names is not None:
            self.names = [str(x) for x in self.names]
            if len(set(self.names)) != len(self.names):
                raise MixingError(f"domain names {self.names} repeat; give each domain a distinct name")
        self.weights = check_weights(self.weights, self.names)
        for what, v, lo in (("batch_size", self.batch_size, 1), ("seed", self.seed, 0)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise MixingError(f"{what}={v!r} must be an integer >= {lo}")
        self.batch_size, self.seed = int(self.batch_size), int(self.seed)
        self.pools = _check_pools(self.pools, self.weights.size, self.weights, self.names)
        self._sizes = [int(p.size) for p in self.pools]
        self._set_quotas()
        n = self.weights.size
        self._batch_index = 0
        self._epoch = [0] * n
        self._pos = [0] * n
        self._residual = [0] * n  # owed minus given, in 1/UNIT blocks

    def _set_quotas(self) -> None:
        a = _quotas(self.weights, self.batch_size)
        self._quota_units = a
        self._base = np.array([x // UNIT for x in a], dtype=np.int64)  # floor(q_d): slots every batch
        self._frac = [x % UNIT for x in a]  # frac(q_d) in units
        self._extra_domains = [d for d, f in enumerate(self._frac) if f > 0]
        self._k = self.batch_size - int(self._base.sum())  # extra slots per batch

    def reweight(self, weights) -> None:
        """New weights from the next batch on (an online mixture): the domains' streams continue where they are and
        the carried residuals stay, so every batch still sums to ``batch_size`` with each domain's count the floor or
        ceiling of its quota under that batch's weights. (The |r_d| < 1 bound holds for fixed weights only.)"""
        w = check_weights(weights, self.names)
        if w.size != self.n_domains:
            raise MixingError(f"got {w.size} weights for {self.n_domains} pools")
        empty = [i for i, (x, s) in enumerate(zip(w, self._sizes)) if x > 0 and s == 0]
        if empty:
            raise MixingError(f"{_domain_label(empty[0], self.names)} has an empty pool; give it weight 0")
        if not np.array_equal(w, self.weights):
            self.weights = w
            self._set_quotas()

    # ---- counts -------------------------------------------------------------------------------------------------

    @property
    def n_domains(self) -> int:
        return len(self.pools)

    @property
    def batch_index(self) -> int:
        """Index of the next batch (= batches drawn or skipped so far)."""
        return self._batch_index

    def _extras(self, r: list[int]) -> list[int]:
        """The domains that get an extra slot in the batch whose carried residuals (before adding) are ``r``."""
        if self._k == 0:
            return []
        frac = self._frac
        owed = {d: r[d] + frac[d] for d in self._extra_domains}
        ranked = sorted(owed, key=lambda d: (owed[d] <= 0, (UNIT - owed[d]) / frac[d], d))
        return ranked[: self._k]

    def _advance_counts(self, n: int) -> np.ndarray:
        """Run the count rule for ``n`` batches, updating the residuals; returns the extra-slot matrix [n, domains]
        (int8, 0/1). The caller adds ``_base``."""
        extra = np.zeros((n, self.n_domains), dtype=np.int8)
        if self._k == 0:
            return extra
        r, frac, doms = self._residual, self._frac, self._extra_domains
        rows, cols = [], []
        for i in range(n):
            chosen = self._extras(r)
            for d in doms:
                r[d] += frac[d]
            for d in chosen:
                r[d] -= UNIT
            rows.extend([i] * len(chosen))
            cols.extend(chosen)
        extra[rows, cols] = 1
        return extra

    def counts(self) -> np.ndarray:
        """Blocks per domain in the next batch (int64; sums to ``batch_size``). Does not advance."""
        c = self._base.copy()
        c[self._extras(self._residual)] += 1
        return c

    # ---- streams ------------------------------------------------------------------------------------------------

    def _permutation(self, d: int, e: int) -> np.ndarray:
        cached = self._perm.get(d)
        if cached is None or cached[0] != e:
            cached = (e, np.random.default_rng([self.seed, d, e]).permutation(self.pools[d]))
            self._perm[d] = cached
        return cached[1]

    def _take(self, d: int, n: int) -> np.ndarray:
        """The next ``n`` blocks of domain ``d``'s stream (crossing into later epochs as needed); advances it."""
        size = self._sizes[d]
        parts = []
        while n > 0:
            perm, pos = self._permutation(d, self._epoch[d]), self._pos[d]
            t = min(n, size - pos)
            parts.append(perm[pos : pos + t])
            n -= t
            self._pos[d] = pos + t
            if self._pos[d] == size:
                self._epoch[d] += 1
                self._pos[d] = 0
        return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty(0, np.int64)

    def _move(self, d: int, n: int) -> None:
        """Advance domain ``d``'s stream by ``n`` blocks without materialising them."""
        if n:
            e, pos = divmod(self._pos[d] + n, self._sizes[d])
            self._epoch[d] += e
            self._pos[d] = pos

    # ---- batches ------------------------------------------------------------------------------------------------

    def batches(self, n: int) -> np.ndarray:
        """The next ``n`` global batches, shape [n, batch_size] (int64 block ids); advances the state."""
        n = _count_arg(n)
        counts = self._advance_counts(n) + self._base  # [n, domains]
        k = self.n_domains
        # Slot labels in batch-major, domain-minor order; a stable sort groups each domain's slots in batch order,
        # which is exactly the order its stream is consumed in.
        labels = np.repeat(np.tile(np.arange(k, dtype=np.int16 if k < 2**15 else np.int64), n), counts.ravel())
        totals = counts.sum(axis=0)
        out = np.empty(n * self.batch_size, dtype=np.int64)
        out[np.argsort(labels, kind="stable")] = np.concatenate([self._take(d, int(totals[d])) for d in range(k)])
        out = out.reshape(n, self.batch_size)
        for i in range(n):
            out[i] = np.random.default_rng([self.seed, SHUFFLE_KEY, self._batch_index + i]).permutation(out[i])
        self._batch_index += n
        return out

    def next_batch(self) -> np.ndarray:
        """Block ids of the next global batch ([batch_size] int64); advances the state."""
        return self.batches(1)[0]

    def skip(self, n: int) -> None:
        """Advance ``n`` batches as if drawn, without building them (resume from a step count)."""
        n = _count_arg(n)
        totals = self._advance_counts(n).sum(axis=0, dtype=np.int64) + n * self._base
        for d in range(self.n_domains):
            self._move(d, int(totals[d]))
        self._batch_index += n

    # ---- persistence --------------------------------------------------------------------------------------------

    def _pools_digest(self) -> str:
        """blake2b of the pools (computed once; pools are stored read-only): a resume with other pools is refused."""
        if self._digest is None:
            h = hashlib.blake2b(digest_size=16)
            for p in self.pools:
                h.update(np.int64(p.size).tobytes())
                h.update(np.ascontiguousarray(p, dtype="<i8").tobytes())
            self._digest = h.hexdigest()
        return self._digest

    def _fingerprint(self) -> dict:
        return {
            "seed": self.seed,
            "batch_size": self.batch_size,
            "quota_units": list(self._quota_units),
            "pool_sizes": list(self._sizes),
            "pools_blake2b": self._pools_digest(),
        }

    def state_dict(self) -> dict:
        """JSON-able state; integers only, so it round-trips exactly."""
        return {
            "format": FORMAT,
            "names": self.names,
            "weights": [float(x) for x in self.weights],  # for reading; the check uses quota_units
            **self._fingerprint(),
            "unit": UNIT,
            "batch_index": self._batch_index,
            "epoch": list(self._epoch),
            "position": list(self._pos),
            "residual": list(self._residual),
        }

    def load_state_dict(self, d: dict) -> None:
        """Resume exactly where ``state_dict`` was taken. Refuses a state from a differently configured mixer."""
        if d.get("format") != FORMAT or d.get("unit") != UNIT:
            raise MixingError(
                f"not a mixer state of this version (format {d.get('format')!r}, unit {d.get('unit')!r}; expected "
                f"{FORMAT!r}, {UNIT}); resume from a checkpoint written by this version of curricula"
            )
        mine = self._fingerprint()
        for key, what in (
            ("seed", "seed"),
            ("batch_size", "batch size (blocks per optimizer step)"),
            ("quota_units", "weights"),
            ("pool_sizes", "pool sizes"),
            ("pools_blake2b", "pools (block ids)"),
        ):
            if d.get(key) != mine[key]:
                saved, here = d.get(key), mine[key]
                if key == "quota_units":
                    saved, here = d.get("weights"), [float(x) for x in self.weights]
                raise MixingError(
                    f"the mixer state was saved with different {what} ({saved!r}, this mixer has {here!r}); "
                    "resume with the same seed, batch size, weights and pools, or start a new mixer"
                )
        n = self.n_domains
        for key in ("epoch", "position", "residual"):
            v = d.get(key)
            if not isinstance(v, list) or len(v) != n or not all(isinstance(x, int) for x in v):
                raise MixingError(f"mixer state field {key!r} must be a list of {n} integers, got {v!r}")
        if any(not 0 <= p < max(s, 1) for p, s in zip(d["position"], self._sizes)):
            raise MixingError(f"mixer state positions {d['position']} are outside the pools ({self._sizes})")
        if not isinstance(d.get("batch_index"), int) or d["batch_index"] < 0:
            raise MixingError(f"mixer state 'batch_index' must be a non-negative integer, got {d.get('batch_index')!r}")
        self._batch_index = d["batch_index"]
        self._epoch = list(d["epoch"])
        self._pos = list(d["position"])
        self._residual = list(d["residual"])


    # ---- a position in the stream (online weights) --------------------------------------------------------------

    def position_state(self) -> dict:
        """Where the stream is: batch index, per-domain epoch and position, residuals and the current weights. Unlike
        ``state_dict`` it does not pin the weights, so it also resumes a mixer whose weights change (online methods);
        the pools are still checked."""
        return {"batch_index": self._batch_index, "epoch": list(self._epoch), "position": list(self._pos),
                "residual": list(self._residual), "weights": [float(x) for x in self.weights],
                "pool_sizes": list(self._sizes), "pools_blake2b": self._pools_digest()}

    def load_position_state(self, d: dict) -> None:
        """Continue from ``position_state`` (taken from a mixer with the same pools, seed and batch size)."""
        if d.get("pool_sizes") != self._sizes or d.get("pools_blake2b") != self._pools_digest():
            raise MixingError(f"the saved stream position is for other pools ({d.get('pool_sizes')}, this mixer has "
                              f"{self._sizes}); resume with the same data")
        self.reweight(d["weights"])
        self._batch_index = int(d["batch_index"])
        self._epoch, self._pos, self._residual = list(d["epoch"]), list(d["position"]), list(d["residual"])


def _count_arg(n) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise MixingError(f"n={n!r} must be a non-negative integer number of batches")
    return int(n)
