"""DoReMi in one run: the main model's own per-domain excess loss over a cached reference drives its sampling.

DoReMi (Xie et al. 2023) trains three models: a reference on baseline weights, a small proxy with Group DRO whose
averaged weights are the output, then the main model on those weights. Here the proxy is the main model itself:

* after every optimizer step, the per-domain mean clipped excess loss ``max(l_model - l_ref, 0)`` of the global batch
  (the same statistic and the same ``GroupDROWeights.update`` as the proxy: exponentiated gradient on log alpha,
  smoothed with uniform) updates alpha, identically on every process;
* instead of weighting the loss by alpha (the proxy's objective), the next batches are **drawn** from alpha with exact
  per-batch counts: the same objective in expectation, and the main model trains on an unweighted loss as DoReMi's
  main model does. ``sample_from: average`` draws from the running average instead (DoReMi's output so far);
* batch ``t`` is drawn from the weights after step ``t - delay`` (``delay`` >= the data loader's lookahead), so
  the stream is a function of the observed losses only, replayed exactly on resume and identical on every rank;
* ``smoothing`` is also the exploration floor: a domain always keeps at least ``smoothing / k`` of every batch, so
  its excess keeps being measured (the proxy samples uniformly and needs no floor; hence a larger default here).

Outputs as for the proxy: ``OUT/doremi/domain_weights.json`` (the average of alpha: reusable for another run),
``weights_history.parquet``, ``domain_weights.png``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from curricula.curriculum.doremi import DoReMiConfig, GroupDROWeights
from curricula.curriculum.mixing import DomainMixer
from curricula.errors import ConfigError
from curricula.methods.base import Curriculum, DataInfo, MethodConfig, MethodError, RunInfo, StepStats, register
from curricula.methods.group_dro import (OUT_DIR, GroupDROOptions, WeightsHistory, require_tokenizer,
                                        write_weights_outputs)
from curricula.methods.mixture import resolve_weights


class DoReMiOnline(Curriculum):
    name = "doremi_online"
    needs = frozenset({"step_stats", "reference"})

    def __init__(self, data: DataInfo, run: RunInfo, initial: np.ndarray, dro: DoReMiConfig,
                 sample_from: str = "current", delay: int | None = None):
        super().__init__(data, run)
        if run.max_steps is None or run.max_steps <= 0:
            raise ConfigError("doremi_online trains for max_steps optimizer steps: set max_steps")
        self.initial = np.asarray(initial, dtype=np.float64)
        self.dro = GroupDROWeights(data.n_domains, dro)
        self.history = WeightsHistory(data.n_domains)
        self.sample_from = sample_from
        self.delay = max(1, int(delay if delay is not None else run.lookahead))

    def epoch_steps(self) -> list[int]:
        return [int(self.run.max_steps)]

    def sampling_weights(self, batch: int) -> np.ndarray:
        """The weights batch ``batch`` (0-based) is drawn from: those after ``batch - delay`` observed steps."""
        j = max(0, batch - self.delay)
        if j == 0:
            return self.initial
        if j > len(self.history):
            raise MethodError(
                f"batch {batch} is drawn from the weights after step {j}, but only {len(self.history)} steps have "
                f"been observed: the data loader reads further ahead than delay={self.delay}; raise delay in the "
                "recipe (or lower dataloader_num_workers / dataloader_prefetch_factor)"
            )
        rows = self.history.weights if self.sample_from == "current" else self.history.average
        return rows[j - 1]

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        names = list(self.data.domain_names)
        mixer = DomainMixer(self.data.pools(), self.initial, self.run.global_batch, self.run.seed, names=names)
        for t in range(self.run.max_steps):
            mixer.reweight(self.sampling_weights(t))
            yield mixer.next_batch()

    def observe_step(self, stats: StepStats) -> None:
        if stats.step != len(self.history) + 1:
            raise MethodError(f"step {stats.step} observed after {len(self.history)} steps; steps must be observed "
                              "once each, in order")
        self.dro.update(stats.excess_sum, stats.tokens)
        self.history.append(stats.step, self.dro)

    def step_metrics(self) -> dict[str, float]:
        return {f"domain_weight/{n}": float(w) for n, w in zip(self.data.domain_names, self.dro.weights)}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "dro": self.dro.state_dict(), **self.history.state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.dro.load_state_dict(state["dro"])
        self.history.load(state)

    def describe(self) -> dict:
        return {"eta": self.dro.config.eta, "smoothing": self.dro.config.smoothing, "sample_from": self.sample_from,
                "delay": self.delay, "initial": dict(zip(self.data.domain_names, self.initial.tolist()))}

    def write_outputs(self, out_dir: Path, reference: str = "cached", **_) -> list[Path]:
        extra = {"steps": self.dro.steps, "eta": self.dro.config.eta, "smoothing": self.dro.config.smoothing,
                 "initial_weights": self.initial.tolist(), "final_weights": self.dro.weights.tolist(),
                 "sample_from": self.sample_from, "delay": self.delay, "reference": reference, "method": self.name}
        return write_weights_outputs(Path(out_dir) / OUT_DIR, self.dro, self.history, list(self.data.domain_names),
                                     self.data.tokenizer, extra, title="sampling weights alpha per step (one run)")


@register("doremi_online")
@dataclass
class DoReMiOnlineConfig(GroupDROOptions, MethodConfig):
    """``method: doremi_online``: DoReMi's Group-DRO weights learned by the main run itself, driving its sampling."""

    smoothing: float = 0.05
    initial: Any = "uniform"  # the baseline weights alpha starts from (as for method: mixture)
    sample_from: str = "current"  # current | average
    delay: int | None = None  # default: the trainer's data-loader lookahead

    def __post_init__(self):
        super().__post_init__()
        if self.sample_from not in ("current", "average"):
            raise ConfigError(f"sample_from={self.sample_from!r}: use 'current' (alpha) or 'average' (its running "
                              "mean)")
        if self.delay is not None and (not isinstance(self.delay, int) or self.delay < 1):
            raise ConfigError(f"delay={self.delay!r} must be a positive integer number of steps")

    def with_domain_weights(self, weights: Any) -> "DoReMiOnlineConfig":
        return replace(self, initial=weights)

    def build(self, data: DataInfo, run: RunInfo) -> DoReMiOnline:
        require_tokenizer(data, "doremi_online")
        initial = resolve_weights(self.initial, data.domain_names, data.blocks_per_domain(), what="initial")
        dro = self.dro_config(data.tokenizer.get("vocab_size"), initial_weights=initial)
        return DoReMiOnline(data, run, initial, dro, self.sample_from, self.delay)
