"""A sampler that draws every global batch from the domains in exact, weighted proportions (``DomainMixer``).

Stateless across iterations: each ``__iter__`` replays the mixer from batch 0 (``(seed, weights, pools)`` fix the
whole stream), so every process yields the identical order, and Trainer's resume (which replays the sampler and
skips the batches already trained) lands on exactly the next batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from curricula.curriculum.mixing import DomainMixer


def domain_pools(domain_ids: np.ndarray, n_domains: int) -> list[np.ndarray]:
    order = np.argsort(domain_ids, kind="stable")
    cuts = np.searchsorted(domain_ids[order], np.arange(1, n_domains))
    return [p.astype(np.int64) for p in np.split(order, cuts)]


class MixtureSampler(Sampler[int]):
    def __init__(self, pools: Sequence[np.ndarray], weights, global_batch: int, n_steps: int, seed: int,
                 names: Sequence[str] | None = None):
        self.pools, self.weights, self.names = list(pools), np.asarray(weights, dtype=np.float64), names
        self.global_batch, self.n_steps, self.seed = global_batch, n_steps, seed
        self.mixer()  # validate now, not at the first batch

    def mixer(self) -> DomainMixer:
        return DomainMixer(self.pools, self.weights, self.global_batch, self.seed, names=self.names)

    def __len__(self) -> int:
        return self.n_steps * self.global_batch

    def __iter__(self) -> Iterator[int]:
        mixer = self.mixer()
        for _ in range(self.n_steps):
            yield from mixer.next_batch().tolist()
