"""ODM on the seam (``method: odm``): the official smoothed-mean rule (``rule.ODMRule``) learns the domain weights from
every optimizer step's per-domain training loss, and the next global batches are drawn from them.

What the driver gives it (``needs = {"step_stats"}``) and how that maps onto the official inputs:

* the reward of a domain is its **token-mean training loss in the global batch** (``loss_sum / tokens``). The official
  reward is the mean over the domain's micro-batches of each micro-batch's token-mean loss (TR 1258-1262), each
  micro-batch from a single domain; the two are equal when a domain's micro-batches hold equally many tokens (packed
  blocks), and the official quantity has no analogue in our mixed micro-batches;
* only domains with tokens in the batch are updated (the official ``group_update`` sees only sampled domains);
* the iteration ``t`` is ``StepStats.step`` (the global step after the optimizer step, as TR 1242 / 1267).

Sampling (the documented difference): the official code draws **one domain per micro-batch** with ``random.choices``
from pi (TR 1475-1486: ``world_size x grad_accum`` draws per step, during warm-up one domain per sequence from the
initial weights, DSU 29-240). Here **every global batch is drawn with exact per-domain counts from pi**
(``DomainMixer``: each domain gets floor or ceil of ``global_batch * pi_k`` blocks, residuals carried), during warm-up
from the initial weights; and, as for every online mixture, batch ``t`` is drawn from the weights after step
``t - delay`` (``delay`` >= the data loader's lookahead; the official loop samples the next step from the weights just
updated, a delay of 1). Both keep the stream a function of the observed statistics, identical on every process and
continued exactly after a resume.

Outputs: ``OUT/odm/domain_weights.json`` (the final pi, reusable by another run: ``mixture``, LFR's ``mixture:``),
``weights_history.parquet`` (pi and the smoothed rewards R per step), ``domain_weights.png``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from curricula.errors import ConfigError
from curricula.methods.odm.rule import OFFICIAL_COMMIT, OFFICIAL_REPO, ODMRule
from curricula.methods.online import OnlineMixture, check_delay, is_int, is_number, require_domains
from curricula.methods.registry import register
from curricula.methods.seam import DataInfo, MethodConfig, RunInfo, StepStats
from curricula.mixing.weights import parse_weights_arg, resolve_weights

PREFIX = "odm_"  # the rule's keys in the curriculum state


class ODM(OnlineMixture):
    name = "odm"
    needs = frozenset({"step_stats"})
    out_folder = "odm"
    log_groups = ("weights", "reward")  # pi after the step; the smoothed exponentiated rewards R
    plot_title = "ODM sampling weights per step"

    def __init__(self, data: DataInfo, run: RunInfo, initial: np.ndarray, smoothing: float, warmup_steps: int,
                 update_frequency: int, delay: int | None = None):
        super().__init__(data, run, initial, delay)
        self.rule = ODMRule(initial, smoothing=smoothing, warmup_steps=warmup_steps,
                            update_frequency=update_frequency)

    def update(self, stats: StepStats) -> np.ndarray:
        tokens = np.asarray(stats.tokens, dtype=np.float64)
        present = tokens > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            rewards = np.where(present, np.asarray(stats.loss_sum, dtype=np.float64) / np.maximum(tokens, 1), np.nan)
        return self.rule.observe(stats.step, rewards, present)

    def log_row(self) -> dict[str, np.ndarray]:
        return {"weights": self._recent[self.steps_observed], "reward": np.asarray(self.rule.reward)}

    def rule_state(self) -> dict:
        return {PREFIX + k: v for k, v in self.rule.state_dict().items()}

    def load_rule_state(self, state: Mapping[str, Any]) -> None:
        self.rule.load_state_dict({k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)})

    def describe(self) -> dict:
        return {"smoothing": self.rule.smoothing, "warmup_steps": self.rule.warmup_steps,
                "update_frequency": self.rule.update_frequency, "delay": self.delay,
                "initial": dict(zip(self.data.domain_names, self.initial.tolist()))}

    def output_extra(self) -> dict:
        return {"smoothing": self.rule.smoothing, "warmup_steps": self.rule.warmup_steps,
                "update_frequency": self.rule.update_frequency, "updates": self.rule.updates,
                "official": f"{OFFICIAL_REPO}@{OFFICIAL_COMMIT}"}


@register("odm")
@dataclass
class ODMConfig(MethodConfig):
    """``method: odm``: Online Data Mixing (the official smoothed-mean rule), defaults of the paper's run
    (``scripts/train_1B_ema_0.5smoothing.sh``)."""

    smoothing: float = 0.5  # SH 10 (code default 0.9, DSU 460)
    warmup_steps: int = 2000  # SH 7: first update at step 2001
    update_frequency: int = 1  # SH 8: every step after the warm-up
    initial: Any = "token_proportional"  # the paper starts from the Pile's natural weights (original_pile.yml)
    delay: int | None = None  # default: the trainer's data-loader lookahead

    def __post_init__(self):
        if isinstance(self.initial, np.ndarray):
            self.initial = self.initial.tolist()
        if not is_number(self.smoothing) or not 0.0 <= float(self.smoothing) < 1.0:
            raise ConfigError(f"odm: smoothing={self.smoothing!r} must be a number in [0, 1) (the weight of the old "
                              "reward in R <- a R + (1 - a) exp(loss); the paper uses 0.5)")
        if not is_int(self.warmup_steps) or self.warmup_steps < 0:
            raise ConfigError(f"odm: warmup_steps={self.warmup_steps!r} must be an integer >= 0 (steps trained on the "
                              "initial weights before the first update; the paper uses 2000)")
        if not is_int(self.update_frequency) or self.update_frequency < 1:
            raise ConfigError(f"odm: update_frequency={self.update_frequency!r} must be an integer >= 1 (update every "
                              "n-th step; the paper uses 1)")
        check_delay("odm", self.delay)
        parse_weights_arg(self.initial, "initial")

    def with_domain_weights(self, weights: Any) -> "ODMConfig":
        return replace(self, initial=weights)

    def build(self, data: DataInfo, run: RunInfo) -> ODM:
        require_domains("odm", data)
        initial = resolve_weights(self.initial, data.domain_names, data.blocks_per_domain(), what="initial")
        return ODM(data, run, initial, float(self.smoothing), int(self.warmup_steps), int(self.update_frequency),
                   self.delay)
