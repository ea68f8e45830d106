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
  the stream is a function of the observed losses only, identical on every rank and continued exactly on resume
  (``curricula.methods.online.OnlineMixture``, the base of every online mixer);
* ``smoothing`` is also the exploration floor: a domain always keeps at least ``smoothing / k`` of every batch, so
  its excess keeps being measured (the proxy samples uniformly and needs no floor; hence a larger default here).

Outputs as for the proxy: ``OUT/doremi/domain_weights.json`` (the average of alpha: reusable for another run),
``weights_history.parquet``, ``domain_weights.png``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from curricula.errors import ConfigError
from curricula.methods.doremi.proxy import LOG_GROUPS, OUT_DIR
from curricula.methods.doremi.update import DoReMiConfig, GroupDROOptions, GroupDROWeights, require_tokenizer
from curricula.methods.registry import register
from curricula.methods.seam import DataInfo, MethodConfig, RunInfo, StepStats
from curricula.methods.online import OnlineMixture
from curricula.mixing.weights import resolve_weights


class DoReMiOnline(OnlineMixture):
    name = "doremi_online"
    needs = frozenset({"step_stats", "reference"})
    out_folder = OUT_DIR
    log_groups = LOG_GROUPS
    plot_title = "sampling weights alpha per step (one run)"

    def __init__(self, data: DataInfo, run: RunInfo, initial: np.ndarray, dro: DoReMiConfig,
                 sample_from: str = "current", delay: int | None = None):
        super().__init__(data, run, initial, delay)
        self.dro = GroupDROWeights(data.n_domains, dro)
        self.sample_from = sample_from

    def update(self, stats: StepStats) -> np.ndarray:
        self.dro.update(stats.excess_sum, stats.tokens)
        return self.dro.weights if self.sample_from == "current" else self.dro.average

    def output_weights(self) -> np.ndarray:
        return self.dro.average

    def log_row(self) -> dict[str, np.ndarray]:
        return {"weights": self.dro.weights, "average": self.dro.average, "excess": self.dro.excess}

    def step_metrics(self) -> dict[str, float]:
        return {f"domain_weight/{n}": float(w) for n, w in zip(self.data.domain_names, self.dro.weights)}

    def rule_state(self) -> dict:
        return {"dro": self.dro.state_dict()}

    def load_rule_state(self, state: Mapping[str, Any]) -> None:
        self.dro.load_state_dict(state["dro"])

    def describe(self) -> dict:
        return {"eta": self.dro.config.eta, "smoothing": self.dro.config.smoothing, "sample_from": self.sample_from,
                "delay": self.delay, "initial": dict(zip(self.data.domain_names, self.initial.tolist()))}

    def output_extra(self) -> dict:
        return {"eta": self.dro.config.eta, "smoothing": self.dro.config.smoothing, "sample_from": self.sample_from}


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
