"""An LFR epoch's block order, evaluated lazily: nothing of the size of the data is built, any step can be resumed.

Epoch ``e`` trains its eligible blocks in the order of a keyed pseudo-random permutation of all block ids,
``Permutation(n, [seed, e])``, skipping the ineligible ones (a focus epoch's dropped blocks). Filtering a uniformly
random permutation gives a uniformly random order of the eligible set, and:

* **no boundary cost**: the order is computed a chunk at a time while the epoch trains (about 75 ns per block), not
  as an n-element shuffle when the epoch starts (2.1 s at 100 M blocks, and 8 bytes per block of memory);
* **O(1) resume**: a checkpoint at step ``s`` records how far into the permutation the epoch had read
  (``cursor``); the resumed stream continues from there.

``Permutation`` is a balanced Feistel network (6 rounds of a splitmix64 round function keyed from
``np.random.default_rng(seed_words)``) over the smallest power of 4 >= n, made a permutation of ``range(n)`` by cycle
walking (re-applying it until the value is < n). It is bijective by construction; ``tests`` check it exhaustively on
small n and for duplicates on large ones.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

CHUNK = 1 << 16  # permutation indices evaluated at a time
_ROUNDS = 6
_S1, _S2, _S3 = np.uint64(30), np.uint64(27), np.uint64(31)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (wrapping uint64 arithmetic)."""
    x = x ^ (x >> _S1)
    x = x * _M1
    x = x ^ (x >> _S2)
    x = x * _M2
    return x ^ (x >> _S3)


class Permutation:
    """A keyed pseudo-random permutation of ``range(n)``, evaluated at any indices."""

    def __init__(self, n: int, seed_words: list[int]):
        self.n = int(n)
        bits = max(2, int(np.ceil(np.log2(max(self.n, 2)))))
        self._half = np.uint64((bits + 1) // 2)
        self._mask = np.uint64((1 << int(self._half)) - 1)
        self._keys = np.random.default_rng(seed_words).integers(0, 2**63, size=_ROUNDS, dtype=np.uint64)

    def _once(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self._half, x & self._mask
        for k in self._keys:
            left, right = right, left ^ (_mix(right ^ k) & self._mask)
        return (left << self._half) | right

    def __call__(self, index: np.ndarray) -> np.ndarray:
        """The permutation's values at ``index`` (int64, each in ``range(n)``)."""
        with np.errstate(over="ignore"):
            x = self._once(np.asarray(index, dtype=np.uint64))
            out = np.flatnonzero(x >= self.n)
            while out.size:  # cycle walking: values outside range(n) are permuted again until they land inside
                x[out] = self._once(x[out])
                out = out[x[out] >= self.n]
        return x.astype(np.int64)


class EpochOrder:
    """One epoch's eligible blocks in permutation order, read chunk by chunk from a permutation index (``cursor``)."""

    def __init__(self, eligible: np.ndarray, seed: int, epoch: int):
        self.eligible = eligible
        self.n = int(eligible.size)
        self.permutation = Permutation(self.n, [int(seed), int(epoch)])

    def chunks(self, cursor: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(block ids, the cursor after each of them) from permutation index ``cursor`` on."""
        for lo in range(int(cursor), self.n, CHUNK):
            index = np.arange(lo, min(lo + CHUNK, self.n), dtype=np.int64)
            ids = self.permutation(index)
            keep = self.eligible[ids]
            yield ids[keep], index[keep] + 1

    def first(self, k: int) -> np.ndarray:
        """The first ``k`` blocks of the order (fewer when fewer are eligible)."""
        parts, have = [], 0
        for ids, _ in self.chunks():
            parts.append(ids[: k - have])
            have += parts[-1].size
            if have >= k:
                break
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def all(self) -> np.ndarray:
        """The whole order (n-sized; for tests and analysis, never on the training path)."""
        parts = [ids for ids, _ in self.chunks()]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)


class EpochStream:
    """An epoch's global batches: ``steps * global_batch`` slots holding the order's first ``real`` blocks, then
    padding slots (``block_id + n``: trained with no loss) that repeat the order's first blocks. Remembers the
    cursor before each of the last batches it drew, so a checkpoint can save where the epoch is."""

    def __init__(self, order: EpochOrder, steps: int, global_batch: int, window: int):
        self.order, self.steps, self.global_batch = order, int(steps), int(global_batch)
        self.window = max(2, int(window) + 2)
        self.real = min(int(np.count_nonzero(order.eligible)), self.steps * self.global_batch)
        self._before: OrderedDict[int, int] = OrderedDict()  # batch index -> cursor before it
        self._live: tuple[int, int] | None = None  # (next batch index, its cursor)

    def batches(self, start: int = 0, cursor: int | None = None) -> Iterator[np.ndarray]:
        """Batches ``start..steps-1``; ``cursor`` is where batch ``start`` begins in the permutation (saved by a
        checkpoint); without it the order is read from its start and the first ``start`` batches' blocks skipped."""
        gb, n = self.global_batch, self.order.n
        emitted = start * gb  # real or padding slots before batch ``start``
        chunks = self.order.chunks(cursor or 0)
        buf = [np.zeros(0, np.int64), np.zeros(0, np.int64)]  # block ids read ahead, and the cursor after each

        def fill(k: int) -> None:
            while buf[0].size < k:
                ids, after = next(chunks)
                buf[0], buf[1] = np.concatenate([buf[0], ids]), np.concatenate([buf[1], after])

        if cursor is None:
            skip = min(emitted, self.real)
            fill(skip)
            cursor = int(buf[1][skip - 1]) if skip else 0
            buf[0], buf[1] = buf[0][skip:], buf[1][skip:]
        pad_source: np.ndarray | None = None
        for t in range(start, self.steps):
            self._remember(t, cursor)
            want = min(gb, max(self.real - emitted, 0))  # real slots of this batch
            fill(want)
            batch = buf[0][:want]
            if want:
                cursor = int(buf[1][want - 1])
            buf[0], buf[1] = buf[0][want:], buf[1][want:]
            emitted += want
            if want < gb:  # the epoch's real blocks are out: the rest of its slots are padding
                if pad_source is None:
                    pad_source = self.order.first(min(self.real, gb)) if self.real else np.zeros(1, np.int64)
                pad_from = emitted - self.real
                batch = np.concatenate([batch, np.resize(pad_source, pad_from + gb - want)[pad_from:] + n])
                emitted += gb - want
            self._live = (t + 1, cursor)
            yield batch

    def _remember(self, t: int, cursor: int) -> None:
        self._before[t] = cursor
        if len(self._before) > self.window:
            self._before.popitem(last=False)

    def cursor_before(self, t: int) -> int | None:
        """Where batch ``t`` begins in the permutation (``t`` drawn recently, or the next one to draw)."""
        if t in self._before:
            return self._before[t]
        if self._live is not None and self._live[0] == t:
            return self._live[1]
        return 0 if t == 0 else None
