"""A ``DomainMixer`` as a resumable stream of one epoch's global batches.

Why: a mixer carries residuals from batch to batch, so batch ``t`` depends on every batch before it. Replaying from
batch 0 on every resume costs O(t) (hours at a million steps); instead the stream remembers its position before each
of the last few batches it drew, and a checkpoint taken at step ``s`` stores the position before batch ``s``. The data
loader reads ahead of training by a bounded number of batches (``RunInfo.lookahead``), so a short window suffices.
A resume with no saved position (an older checkpoint) falls back to ``DomainMixer.skip``, which gives the same stream.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np

from curricula.mixing.mixer import DomainMixer, MixingError


class MixerStream:
    """``batches(start, stop)`` yields batches ``start..stop-1`` of a mixer made by ``make_mixer``; ``weights_for(t)``
    (online methods) gives batch ``t``'s weights. ``position(t)`` is what a checkpoint at step ``t`` saves."""

    def __init__(self, make_mixer: Callable[[], DomainMixer], window: int,
                 weights_for: Callable[[int], np.ndarray] | None = None):
        self.make_mixer = make_mixer
        self.window = max(2, int(window) + 2)
        self.weights_for = weights_for
        self._before: OrderedDict[int, dict] = OrderedDict()  # batch index -> mixer position before drawing it
        self._live: DomainMixer | None = None
        self._restored: dict | None = None

    def batches(self, start: int, stop: int) -> Iterator[np.ndarray]:
        mixer = self.make_mixer()
        restored, self._restored = self._restored, None
        if restored is not None and restored["batch_index"] == start:
            mixer.load_position_state(restored)
        elif start:
            mixer.skip(start)  # no saved position (e.g. ignore_data_skip, or a state from an older version)
        self._live, self._before = mixer, OrderedDict()
        for t in range(start, stop):
            self._before[t] = mixer.position_state()
            if len(self._before) > self.window:
                self._before.popitem(last=False)
            if self.weights_for is not None:
                mixer.reweight(self.weights_for(t))
            yield mixer.next_batch()

    def position(self, t: int) -> dict:
        """The stream's position before batch ``t`` (``t`` drawn recently, or the next one to draw)."""
        if t in self._before:
            return self._before[t]
        if self._live is not None and self._live.batch_index == t:
            return self._live.position_state()
        if self._live is None and t == 0:
            return {}
        raise MixingError(f"the stream position before batch {t} is no longer known (kept: {list(self._before)}); "
                          "the data loader read further ahead than the curriculum's lookahead")

    def restore(self, position: dict) -> None:
        """The position the next ``batches`` call starts from (when it starts at that batch)."""
        self._restored = dict(position) if position else None
