"""Fixed domain mixtures: every global batch drawn from the domains in exact proportions (``DomainMixer``).

The stream is a function of (seed, weights, pools) only, so it is identical on every process; a checkpoint stores the
mixer's position at its step (``MixerStream``), so a resume continues there without replaying the stream. Continual
pretraining's replay is this mixture over two pools (``curricula.methods.continual.replay``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from curricula.errors import ConfigError
from curricula.methods.registry import register
from curricula.methods.seam import Curriculum, DataInfo, MethodConfig, RunInfo
from curricula.mixing.mixer import DomainMixer
from curricula.mixing.stream import MixerStream
from curricula.mixing.weights import resolve_weights

class FixedMixture(Curriculum):
    """One epoch of ``max_steps`` global batches with exact per-domain (per-pool) counts."""

    name = "mixture"

    def __init__(self, data: DataInfo, run: RunInfo, weights: np.ndarray, pools: Sequence[np.ndarray] | None = None,
                 names: Sequence[str] | None = None, seed: int | None = None, label: str = "mixture"):
        super().__init__(data, run)
        if run.max_steps is None or run.max_steps <= 0:
            raise ConfigError("a weighted domain mixture has no natural epoch: set max_steps (the number of "
                              "optimizer steps)")
        self.pools = list(pools) if pools is not None else data.pools()
        self.names = list(names) if names is not None else list(data.domain_names)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.seed = run.seed if seed is None else int(seed)
        self.name = label
        self.mixer()  # validate now, not at the first batch
        self.stream = MixerStream(self.mixer, window=run.lookahead)

    def mixer(self) -> DomainMixer:
        return DomainMixer(self.pools, self.weights, self.run.global_batch, self.seed, names=self.names)

    def epoch_steps(self) -> list[int]:
        return [int(self.run.max_steps)]

    def batches(self, epoch: int, start: int = 0) -> Iterator[np.ndarray]:
        return self.stream.batches(start, int(self.run.max_steps))

    def stream_state(self, step: int) -> dict:
        return {"position": self.stream.position(step)}

    def load_stream_state(self, state: Mapping[str, Any]) -> None:
        self.stream.restore(state.get("position") or {})

    def describe(self) -> dict:
        return {"weights": dict(zip(self.names, self.weights.tolist())), "seed": self.seed,
                "pool_sizes": [int(p.size) for p in self.pools]}


@register("mixture")
@dataclass
class MixtureConfig(MethodConfig):
    """``method: mixture``: sample every batch from the domains in these proportions (exact counts per batch)."""

    weights: Any = "uniform"  # uniform | token_proportional | list | {domain: w} | weights file
    seed: int | None = None  # default: the run's seed

    def __post_init__(self):
        if isinstance(self.weights, np.ndarray):
            self.weights = self.weights.tolist()

    def with_domain_weights(self, weights: Any) -> "MixtureConfig":
        return MixtureConfig(weights=weights, seed=self.seed)

    def build(self, data: DataInfo, run: RunInfo) -> FixedMixture:
        w = resolve_weights(self.weights, data.domain_names, data.blocks_per_domain())
        return FixedMixture(data, run, w, seed=self.seed)
