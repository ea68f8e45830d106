"""Fixed domain mixtures: every global batch drawn from the domains in exact proportions (``DomainMixer``), and
continual pretraining's replay as a mixture of two pools (the current stage's blocks and the earlier stages').

The stream is a function of (seed, weights, pools) only, so it is identical on every process, and Trainer's resume
(which replays the sampler and skips the batches already trained) lands on exactly the next batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curricula.curriculum.mixing import DomainMixer, MixingError, check_weights
from curricula.errors import ConfigError
from curricula.methods.base import Curriculum, DataInfo, MethodConfig, RunInfo, register

WeightsSpec = str | Sequence[float] | Mapping[str, float] | np.ndarray
NAMED_WEIGHTS = ("uniform", "token_proportional")


def resolve_weights(spec: WeightsSpec, names: Sequence[str], blocks_per_domain: np.ndarray | None = None,
                    what: str = "domain_weights") -> np.ndarray:
    """'uniform' | 'token_proportional' (packed blocks have equal length: proportional to blocks) | a list in domain
    order | a mapping {domain: weight} | a weights JSON file (DoReMi's ``domain_weights.json``) → float64 weights,
    one per domain of ``names``. Every error names ``what``."""
    names = list(names)
    spec = parse_weights_arg(spec, what)
    if isinstance(spec, str):
        if spec == "uniform":
            return np.full(len(names), 1.0 / len(names))
        if spec == "token_proportional":
            if blocks_per_domain is None:
                raise ConfigError(f"{what}='token_proportional' needs the data's block counts")
            b = np.asarray(blocks_per_domain, dtype=np.float64)
            return b / b.sum()
        from curricula.curriculum.doremi import read_weights_json

        return read_weights_json(spec, names)
    if isinstance(spec, Mapping):
        missing, extra = sorted(set(names) - set(spec)), sorted(set(spec) - set(names))
        if missing or extra:
            raise ConfigError(f"{what} names {sorted(spec)} do not match the data's domains {names}: "
                              f"missing {missing}, unknown {extra}")
        spec = [spec[n] for n in names]
    try:
        return check_weights(np.asarray(spec, dtype=np.float64), names)
    except MixingError as err:
        raise MixingError(f"{what}: {err}") from None


def parse_weights_arg(value: Any, flag: str = "domain_weights") -> Any:
    """A weights argument checked as far as it can be without the data: JSON parsed, lists checked, names and files
    kept for ``resolve_weights``. Errors name the flag."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, str):
        text = value.strip()
        if text in NAMED_WEIGHTS:
            return text
        if text[:1] in "[{":
            import json

            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise ConfigError(f"--{flag} {text!r} is not valid JSON ({err.msg} at column {err.colno}); give "
                                  "'uniform', a list like [0.5, 0.5] or an object like {\"code\": 0.5, ...}") from None
        elif Path(text).is_file():
            return text
        else:
            close = _closest(text, [*NAMED_WEIGHTS])
            raise ConfigError(
                f"--{flag} {text!r} is not a weights file, JSON or one of {list(NAMED_WEIGHTS)}"
                + (f" (did you mean {close!r}?)" if close else "")
                + "; give 'uniform', 'token_proportional', a JSON list in domain order, a JSON object "
                "{domain: weight} or the path of a weights file (DoReMi's domain_weights.json)")
    if isinstance(value, Mapping):
        check_weights(list(value.values()))
        return {str(k): float(v) for k, v in value.items()}
    try:
        return check_weights(value).tolist()
    except MixingError as err:
        raise MixingError(f"--{flag}: {err}") from None


def _closest(word: str, options: Sequence[str]) -> str | None:
    import difflib

    hits = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return hits[0] if hits else None


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

    def mixer(self) -> DomainMixer:
        return DomainMixer(self.pools, self.weights, self.run.global_batch, self.seed, names=self.names)

    def epoch_steps(self) -> list[int]:
        return [int(self.run.max_steps)]

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        mixer = self.mixer()
        for _ in range(self.run.max_steps):
            yield mixer.next_batch()

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


@register("replay")
@dataclass
class ReplayConfig(MethodConfig):
    """``method: replay``: compute-equivalent replay. The rows are the current stage's ``new_rows`` blocks followed by
    the replay pool (earlier stages' blocks); a share ``replay`` of every global batch comes from the replay pool."""

    replay: float = 0.0
    new_rows: int = 0
    stage: str = "new"
    seed: int | None = None

    def __post_init__(self):
        if not 0.0 <= float(self.replay) < 1.0:
            raise ConfigError(f"replay={self.replay}: the replayed share of a batch must be in [0, 1)")

    def build(self, data: DataInfo, run: RunInfo) -> FixedMixture:
        n = data.n_rows
        if not 0 < self.new_rows <= n:
            raise ConfigError(f"replay: new_rows={self.new_rows} must be in (0, {n}] (the current stage's blocks "
                              "come first in the training rows)")
        pools = [np.arange(self.new_rows, dtype=np.int64), np.arange(self.new_rows, n, dtype=np.int64)]
        weights = np.array([1.0 - self.replay, self.replay])
        return FixedMixture(data, run, weights, pools=pools, names=[self.stage, "replay"], seed=self.seed,
                            label="replay")
