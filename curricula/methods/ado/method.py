"""ADO on the seam (``method: ado``): per-domain power laws fitted to the training loss (``rule.ADORule``) set the
sampling distribution, updated after every optimizer step; the next global batches are drawn from it.

What the driver gives it (``needs = {"step_stats"}``) and how that maps onto the official inputs (AL 111-138):

* a domain's loss in the step is its **token-mean training loss in the global batch** (``loss_sum / tokens``); the
  official one is the mean over its sequences of each sequence's mean token loss (TRN 53-55, ADO 149): equal for
  packed blocks of one length;
* the batch composition (``p_history``'s input, ADO 136) is the domains' **token** shares; the official one is their
  sequence shares: equal for blocks of one length;
* the fit's x-axis counts **blocks**: ``global_batch`` per step (``use_same_step_size``: the total, ADO 129-131);
* ``itr`` is ``StepStats.step - 1`` (the official loop calls the selector with the 0-based iteration, TRN 215-235).

Sampling: the official loader draws every sequence iid from ``p`` (``np.random.choice``, AL 93-96); here every
global batch is drawn with **exact per-domain counts** from ``p`` (``DomainMixer``), and batch ``t`` from the ``p``
after step ``t - delay`` (``delay`` >= the data loader's lookahead; the official next batch uses the ``p`` just
computed). Both keep the stream a function of the observed statistics: identical on every process, exact on resume.

Cost and state (the deviations of ``rule.py``, chosen so that a step stays cheap and the checkpoint flat):

* a refit (every ``update_interval`` steps, 512 L-BFGS starts per domain over at most ``max_fit_points`` points)
  takes seconds per domain; it runs in a **background thread** started at the refit step ``s`` and its parameters
  take effect at step ``s + fit_lag`` on every process (``fit_lag: 0`` fits synchronously, as the official code);
  the thread is joined there, so the result never depends on timing. A checkpoint between ``s`` and ``s + fit_lag``
  holds the fit's points; a resumed run fits them again and applies the result at the same step;
* the history is bounded (``max_fit_points`` smoothed points + the last ``savgol_window`` loss rows), so the state is
  the same size at step 1,000 and at step 1,000,000.

Outputs: ``OUT/ado/domain_weights.json`` (the final ``p``, reusable), ``weights_history.parquet`` (``p``, its running
average ``p_avg`` and the credit ``p_history`` per step), ``domain_weights.png``; each applied fit is an event in
``curriculum/reports.jsonl`` (its parameters per domain).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from curricula.errors import ConfigError
from curricula.methods.ado.rule import GRID_STARTS, OFFICIAL_COMMIT, OFFICIAL_REPO, ADORule
from curricula.methods.online import OnlineMixture, check_delay, is_int, require_domains
from curricula.methods.registry import register
from curricula.methods.seam import DataInfo, MethodConfig, Report, RunInfo, StepStats
from curricula.mixing.weights import parse_weights_arg, resolve_weights

PREFIX = "ado_"  # the rule's keys in the curriculum state


class ADO(OnlineMixture):
    name = "ado"
    needs = frozenset({"step_stats"})
    out_folder = "ado"
    log_groups = ("weights", "average", "credit")  # p (sampled next), p_avg, p_history
    plot_title = "ADO sampling distribution per step"

    def __init__(self, data: DataInfo, run: RunInfo, prior: np.ndarray, rule: ADORule, delay: int | None = None):
        super().__init__(data, run, prior, delay)
        self.rule = rule

    def update(self, stats: StepStats) -> np.ndarray:
        tokens = np.asarray(stats.tokens, dtype=np.float64)
        loss_sum = np.asarray(stats.loss_sum, dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(tokens > 0, loss_sum / np.maximum(tokens, 1), 0.0)
        return self.rule.observe(stats.step - 1, tokens, mean, float(loss_sum.sum() / tokens.sum()),
                                 self.run.global_batch)

    def observe_step(self, stats: StepStats) -> Report | None:
        super().observe_step(stats)
        events, self.rule.events = self.rule.events, []
        if not events:
            return None
        report = Report()
        for e in events:
            params = dict(zip(self.data.domain_names, e["params"]))
            report.event = {"step": int(stats.step), "fit": {"started_at_step": e.get("started", e["itr"]) + 1,
                                                             "points": e.get("points"), "weight": e.get("weight"),
                                                             "valid": e["valid"], "params_a_e_alpha": params}}
            report.metrics["ado/fit_seconds"] = float(e.get("seconds", 0.0))
            if not e["valid"]:
                report.warnings.append(f"ADO's fit started at step {e.get('started', e['itr']) + 1} gave non-finite "
                                       "parameters; the previous ones stay (as in the official code)")
        return report

    def log_row(self) -> dict[str, np.ndarray]:
        return {"weights": self._recent[self.steps_observed], "average": self.rule.p_avg, "credit": self.rule.p_history}

    def rule_state(self) -> dict:
        return {PREFIX + k: v for k, v in self.rule.state_dict().items()}

    def load_rule_state(self, state: Mapping[str, Any]) -> None:
        self.rule.load_state_dict({k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)})

    def describe(self) -> dict:
        r = self.rule
        return {"ignore_steps": r.ignore_steps, "start_step": r.start_step, "update_interval": r.update_interval,
                "savgol_window": r.history.window, "savgol_order": r.history.order,
                "point_stride": r.history.base_stride, "max_fit_points": r.history.max_points,
                "fit_starts": r.starts, "fit_lag": r.fit_lag, "delay": self.delay,
                "prior": dict(zip(self.data.domain_names, self.initial.tolist()))}

    def output_extra(self) -> dict:
        r = self.rule
        return {**{k: v for k, v in self.describe().items() if k not in ("prior", "delay")}, "fits": r.fits,
                "average": r.p_avg.tolist(), "params_a_e_alpha": None if r.params is None else r.params.tolist(),
                "official": f"{OFFICIAL_REPO}@{OFFICIAL_COMMIT}"}


@register("ado")
@dataclass
class ADOConfig(MethodConfig):
    """``method: ado``: Adaptive Data Optimization, defaults of the official code and its Pile configs."""

    ignore_steps: int = 1000  # configs/loader/pile_ado.yaml:5 (first history row the fit uses)
    start_step: int = 500  # configs/experiment/124M_ado.yaml:15 (no policy, no refit before it)
    update_interval: int = 1000  # ADO 26 (refit every 1000 steps)
    prior: Any = "token_proportional"  # AL 48, 62-65: mode 'empirical', the domains' natural token shares
    savgol_window: int = 101  # ADO 223-224
    savgol_order: int = 3  # ADO 223-224
    point_stride: int = 10  # ADO 221, 224 (every 10th row)
    max_fit_points: int = 256  # ours: the bounded history (the official fit keeps every row)
    fit_starts: int = 512  # ADO 294-299 (8 x 8 x 8 grid); 64 or 8 for a subgrid
    fit_lag: int = 100  # ours: a refit started at step s runs in the background, applied at s + fit_lag (0: at s)
    delay: int | None = None  # default: the trainer's data-loader lookahead

    def __post_init__(self):
        if isinstance(self.prior, np.ndarray):
            self.prior = self.prior.tolist()
        for key, lo in (("ignore_steps", 0), ("start_step", 0), ("update_interval", 1), ("savgol_window", 1),
                        ("savgol_order", 0), ("point_stride", 1), ("max_fit_points", 2), ("fit_lag", 0)):
            v = getattr(self, key)
            if not is_int(v) or v < lo:
                raise ConfigError(f"ado: {key}={v!r} must be an integer >= {lo}")
        if self.savgol_window % 2 == 0 or self.savgol_order >= self.savgol_window:
            raise ConfigError(f"ado: savgol_window={self.savgol_window} must be odd and larger than savgol_order="
                              f"{self.savgol_order} (the official filter: window 101, order 3)")
        if self.start_step < self.savgol_window - 1:
            raise ConfigError(f"ado: start_step={self.start_step} is before the smoothing window of "
                              f"{self.savgol_window} steps is full; raise start_step to >= {self.savgol_window - 1} "
                              "(or lower savgol_window)")
        if self.fit_starts not in GRID_STARTS:
            raise ConfigError(f"ado: fit_starts={self.fit_starts!r}: use 512 (the official grid), or 64 / 8 (every "
                              "2nd / 4th value of each axis of it, cheaper)")
        if self.fit_lag >= self.update_interval:
            raise ConfigError(f"ado: fit_lag={self.fit_lag} must be below update_interval={self.update_interval} (a "
                              "refit must be applied before the next one starts); lower fit_lag")
        check_delay("ado", self.delay)
        parse_weights_arg(self.prior, "prior")

    def with_domain_weights(self, weights: Any) -> "ADOConfig":
        return replace(self, prior=weights)

    def build(self, data: DataInfo, run: RunInfo) -> ADO:
        require_domains("ado", data)
        prior = resolve_weights(self.prior, data.domain_names, data.blocks_per_domain(), what="prior")
        if np.any(prior <= 0):
            zero = [n for n, w in zip(data.domain_names, prior) if w <= 0]
            raise ConfigError(f"ado: the prior gives domain(s) {zero} weight 0; ADO's credit is proportional to the "
                              "prior, so they would never be sampled: give every domain a positive prior weight")
        rule = ADORule(prior, ignore_steps=self.ignore_steps, start_step=self.start_step,
                       update_interval=self.update_interval, window=self.savgol_window, order=self.savgol_order,
                       stride=self.point_stride, max_points=self.max_fit_points, starts=self.fit_starts,
                       fit_lag=self.fit_lag, horizon=int(run.max_steps) - 1 if run.max_steps else None)
        return ADO(data, run, rule.prior, rule, self.delay)
