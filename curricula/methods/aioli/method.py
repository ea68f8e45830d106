"""Aioli on the seam (``method: aioli``): rounds of LearnParams (short training segments on perturbed mixtures, each
followed by a measurement of every domain's held-out loss) and a mixed phase on the proportions they imply
(``rule.AioliRule``).

What the driver gives it (``needs = {"step_stats", "eval_stats"}``): after every optimizer step the trainer calls
``observe_step`` (the training statistics are not used: Aioli never learns from training loss; the trainer asks
``wants_eval`` from its ``observe_step``, hence ``step_stats``) and, when ``wants_eval(step)``, measures every
domain's mean token loss on the held-out mixing set (``hf_trainer_ext.domain_probe.DomainLossProbe``: the trainer's
``eval_dataset`` or ``mixing_eval_dataset``, ``mixing_eval_blocks``; it counts the blocks it scores, the method's
forward-only cost) and hands it to ``observe_eval``. The official loss is the mean over sequences of each sequence's
mean token loss (EV 210-234): the same for packed blocks of one length.

The schedule, in optimizer steps (``o = max(1, prior_steps)``, ``U = update_steps``, ``L = k * lp_rounds *
lp_steps``): steps ``1..o`` train on ``initial``; round ``r`` covers steps ``o + rU + 1 .. o + (r+1)U``: the held-out
loss is measured after step ``o + rU`` (the round's ``loss_0``) and after each of its ``k * lp_rounds`` LearnParams
segments of ``lp_steps`` steps (each on one perturbed mixture, in the round's sweep order); after the last one the
proportions are updated, and the rest of the round trains on them. So ``1 + k * lp_rounds`` measurements per round,
as the official code (AT 310-315, 154-158).

Differences from the official code, and why:

* **the first step**: the official round 0 measures the untrained model; the trainer measures only after a step, so
  round 0 starts after step ``o >= 1`` (trained on ``initial``: uniform, the official EG start). With
  ``prior_steps`` (the official restricted setting, AT 253-301) the rounds start after the prior phase as there;
* **exact counts**: every global batch is drawn with exact per-domain counts (``DomainMixer``): a LearnParams batch
  holds floor/ceil of ``global_batch * m_j`` blocks of each domain (the official ``interleave_per_batch_mapped``
  builds groups of ``max(1, int(p bs))`` samples, exact for the paper's k=2, 3 scripts but not for k=7: NOTES 3(e)4),
  and the mixed phase exact counts from ``p`` (the official one draws iid batches, re-seeded identically each round);
* **the sweep order** of round ``r`` is ``lp_rounds`` permutations drawn from ``default_rng([seed, 2411, r])`` (the
  official code draws them from the global ``np.random``): a function of the seed and the round only, so nothing
  of it is saved and a process can compute a later round's LearnParams mixtures before that round starts;
* **the delay**: the LearnParams mixtures are known ahead (the order is), but a round's new proportions are known only
  after its last measurement, while the data loader reads up to ``delay`` batches ahead. As for every online mixture,
  a mixed-phase batch ``t`` is drawn from the proportions known after step ``t - delay``: the first ``delay`` steps of
  each mixed phase still train on the previous proportions (``initial`` in round 0);
* the run need not be a whole number of rounds (the official code asserts it, TU 62-63): the last round is cut at
  ``max_steps``.

Outputs: ``OUT/aioli/domain_weights.json`` (the last learned proportions, reusable), ``weights_history.parquet``
(``weights``: the mixture each step trained on, LearnParams perturbations included; ``learned``: the proportions
learned before the step's measurement), ``domain_weights.png``; each round's normalised A and proportions are an
event in ``curriculum/reports.jsonl``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from curricula.errors import ConfigError
from curricula.methods.aioli.rule import OFFICIAL_COMMIT, OFFICIAL_REPO, AioliRule, lp_mixture
from curricula.methods.online import OnlineMixture, check_delay, is_int, is_number, require_domains
from curricula.methods.registry import register
from curricula.methods.seam import DataInfo, EvalStats, MethodConfig, MethodError, Report, RunInfo, StepStats
from curricula.mixing.weights import parse_weights_arg, resolve_weights

PREFIX = "aioli_"  # the rule's keys in the curriculum state
ORDER_KEY = 2411  # second word of the sweep-order generator's seed ([seed, ORDER_KEY, round])


class Aioli(OnlineMixture):
    name = "aioli"
    needs = frozenset({"step_stats", "eval_stats"})
    out_folder = "aioli"
    # the mixture trained at the step; the proportions learned so far (a step's row is logged when its training
    # statistics are observed, before its held-out measurement: a round's proportions appear from the next row)
    log_groups = ("weights", "learned")
    plot_title = "Aioli: mixture trained per step (LearnParams perturbations included)"

    def __init__(self, data: DataInfo, run: RunInfo, initial: np.ndarray, rule: AioliRule, update_steps: int,
                 lp_steps: int, prior_steps: int = 0, delay: int | None = None):
        super().__init__(data, run, initial, delay)
        self.rule = rule
        self.update_steps, self.lp_steps, self.prior_steps = int(update_steps), int(lp_steps), int(prior_steps)
        self.offset = max(1, self.prior_steps)
        self.lp_duration = rule.segments * self.lp_steps
        self.learned = self.initial  # the proportions learned so far (initial until round 0 ends)
        self._trained = self.initial
        self._orders: dict[int, np.ndarray] = {}

    # ---- the schedule -------------------------------------------------------------------------------------------

    def order(self, r: int) -> np.ndarray:
        """Round ``r``'s sweep order: ``lp_rounds`` permutations of the domains (a function of the seed and ``r``)."""
        if r not in self._orders:
            rng = np.random.default_rng([self.run.seed, ORDER_KEY, r])
            self._orders = {r: np.concatenate([rng.permutation(self.rule.k) for _ in range(self.rule.lp_rounds)]),
                            **{q: o for q, o in self._orders.items() if q > r - 2}}
        return self._orders[r]

    def segment_of(self, step: int) -> tuple[int, int] | None:
        """(round, LearnParams segment) step ``step`` (1-based) trains in, or None (prior or mixed phase)."""
        if step <= self.offset:
            return None
        r, pos = divmod(step - self.offset - 1, self.update_steps)
        return (r, pos // self.lp_steps) if pos < self.lp_duration else None

    def sampling_weights(self, batch: int) -> np.ndarray:
        seg = self.segment_of(batch + 1)  # batch t trains in step t + 1
        if seg is not None:
            r, j = seg
            return lp_mixture(self.rule.k, self.rule.one_hot_factor, int(self.order(r)[j]))
        return super().sampling_weights(batch)  # the proportions known after step batch - delay

    def wants_eval(self, step: int) -> bool:
        if step < self.offset or step > int(self.run.max_steps):
            return False
        q = (step - self.offset) % self.update_steps
        if q == 0:
            return step < int(self.run.max_steps)  # a round's loss_0 (only if the round trains at all)
        return q <= self.lp_duration and q % self.lp_steps == 0  # the end of a LearnParams segment

    # ---- observation --------------------------------------------------------------------------------------------

    def update(self, stats: StepStats) -> np.ndarray:
        self._trained = self.sampling_weights(stats.step - 1)
        return self.learned

    def observe_eval(self, stats: EvalStats) -> Report | None:
        step = int(stats.step)
        if step != self.steps_observed or not self.wants_eval(step):
            raise MethodError(f"aioli: a held-out measurement after step {step} was not asked for (steps observed: "
                              f"{self.steps_observed}); measure exactly when wants_eval(step) says so")
        loss = np.asarray(stats.loss, dtype=np.float64)
        if not np.all(np.isfinite(loss)):
            bad = [n for n, x in zip(self.data.domain_names, loss) if not np.isfinite(x)]
            raise MethodError(f"aioli learns from every domain's held-out loss, but {bad} has none (no held-out "
                              "blocks, or a non-finite loss): give the eval_dataset / mixing_eval_dataset blocks of "
                              "every domain")
        r, q = divmod(step - self.offset, self.update_steps)
        if q == 0:
            self.rule.begin_round(loss, self.order(r))                                          # AT 310-315, 120-123
            return None
        segment = q // self.lp_steps - 1
        if self.rule.order is None or self.rule.lp_pos != segment:
            raise MethodError(f"aioli: the measurement after step {step} ends LearnParams segment {segment} of round "
                              f"{r}, but the state holds {self.rule.lp_pos} segments of "
                              f"{'no round' if self.rule.order is None else 'this round'}; resume from a checkpoint "
                              "of this run")
        self.rule.record_lp_eval(loss)                                                          # AT 153-161
        if q < self.lp_duration:
            return None
        graph, p = self.rule.finish_round()                                                     # AT 164-350
        self.learned = p
        self._recent[step] = p  # mixed-phase batches from step + delay on are drawn from it
        names = list(self.data.domain_names)
        return Report(metrics={"aioli/round": float(r), **{f"aioli/learned/{n}": float(x) for n, x in zip(names, p)}},
                      event={"step": step, "round": r, "A_normalised": graph.tolist(),
                             "A_column_sums": dict(zip(names, graph.sum(axis=0).tolist())),
                             "weights": dict(zip(names, p.tolist()))})

    # ---- logs, state, outputs -----------------------------------------------------------------------------------

    def log_row(self) -> dict[str, np.ndarray]:
        return {"weights": self._trained, "learned": self.learned}

    def step_metrics(self) -> dict[str, float]:
        return {f"domain_weight/{n}": float(w) for n, w in zip(self.data.domain_names, self.learned)}

    def output_weights(self) -> np.ndarray:
        return self.learned

    def rule_state(self) -> dict:
        return {**{PREFIX + k: v for k, v in self.rule.state_dict().items()},
                "aioli_learned": np.asarray(self.learned, dtype=np.float64).copy()}

    def load_rule_state(self, state: Mapping[str, Any]) -> None:
        self.rule.load_state_dict({k[len(PREFIX):]: v for k, v in state.items()
                                   if k.startswith(PREFIX) and k != "aioli_learned"})
        self.learned = np.array(state["aioli_learned"], dtype=np.float64).reshape(self.rule.k)
        self._trained = self.learned

    def describe(self) -> dict:
        r = self.rule
        return {"eta": r.eta, "update_steps": self.update_steps, "lp_rounds": r.lp_rounds, "lp_steps": self.lp_steps,
                "one_hot_factor": r.one_hot_factor, "ema": r.ema, "normalize_A": r.normalize_A,
                "diagonal": r.diagonal, "prior_steps": self.prior_steps, "delay": self.delay,
                "initial": dict(zip(self.data.domain_names, self.initial.tolist()))}

    def output_extra(self) -> dict:
        return {**{k: v for k, v in self.describe().items() if k not in ("initial", "delay")},
                "rounds": self.rule.rounds, "evaluations_per_round": 1 + self.rule.segments,
                "official": f"{OFFICIAL_REPO}@{OFFICIAL_COMMIT}"}


@register("aioli")
@dataclass
class AioliConfig(MethodConfig):
    """``method: aioli``: Aioli, defaults of the official README's example and its arxiv/stackexchange script
    (``scripts/arxiv_stackexchange/aioli/run.sh``)."""

    eta: float = 0.2  # run.sh ETA=0.2 (README: try 0.1, 0.2, 0.5; MAIN 226-230 has no default)
    update_steps: int = 250  # run.sh UPDATE_STEPS=250 (MAIN 220-225 has no default)
    lp_rounds: int = 4  # run.sh --lp_rounds 4 (README: 4 or 6; MAIN 328-333 default 1)
    lp_steps: int = 4  # run.sh --lp_steps 4 (README: 4; MAIN 334-339 default 5)
    one_hot_factor: float = 0.625  # run.sh OHF=0.625 (README: below 1; MAIN 341-346 default 1)
    ema: float | None = 0.1  # run.sh --ema 0.1 (every paper script; MAIN 348-353 default None)
    normalize_A: bool = True  # run.sh --aioli_normalize_A (README: always set; MAIN 307-311 default off)
    diagonal: bool = False  # MAIN 355-359
    initial: Any = "uniform"  # AT 223: the weights before the first update are ones (uniform)
    prior_steps: int = 0  # AT 242-245: steps on `initial` before the rounds (restricted setting); ours: at least 1
    delay: int | None = None  # default: the trainer's data-loader lookahead

    def __post_init__(self):
        if isinstance(self.initial, np.ndarray):
            self.initial = self.initial.tolist()
        if not is_number(self.eta) or self.eta <= 0:
            raise ConfigError(f"aioli: eta={self.eta!r} must be a positive number (the exponentiated-gradient step; "
                              "the paper's scripts use 0.1 to 1)")
        for key, lo in (("update_steps", 2), ("lp_rounds", 1), ("lp_steps", 1), ("prior_steps", 0)):
            v = getattr(self, key)
            if not is_int(v) or v < lo:
                raise ConfigError(f"aioli: {key}={v!r} must be an integer >= {lo}")
        if not is_number(self.one_hot_factor) or not 0 < self.one_hot_factor <= 1:
            raise ConfigError(f"aioli: one_hot_factor={self.one_hot_factor!r} must be in (0, 1] (the share of the "
                              "perturbed domain in a LearnParams batch; the paper uses 0.5 to 0.75)")
        if self.ema is not None and (not is_number(self.ema) or not 0 <= self.ema < 1):
            raise ConfigError(f"aioli: ema={self.ema!r} must be in [0, 1) (the weight of the previous rounds' matrix), "
                              "or null for the cumulative update")
        for key in ("normalize_A", "diagonal"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"aioli: {key}={getattr(self, key)!r} must be true or false")
        check_delay("aioli", self.delay)
        parse_weights_arg(self.initial, "initial")

    def with_domain_weights(self, weights: Any) -> "AioliConfig":
        return replace(self, initial=weights)

    def build(self, data: DataInfo, run: RunInfo) -> Aioli:
        require_domains("aioli", data)
        k = data.n_domains
        if self.one_hot_factor != 1 and self.one_hot_factor <= 1 / k:
            raise ConfigError(f"aioli: one_hot_factor={self.one_hot_factor} must be above 1/k = {1 / k:.4g} for "
                              f"{k} domains (else the perturbed mixtures do not single out their domain and A cannot "
                              "be solved for); raise it (the paper: 0.5 to 0.75)")
        lp = k * self.lp_rounds * self.lp_steps
        if lp >= self.update_steps:
            raise ConfigError(f"aioli: a round's LearnParams take {k} domains x {self.lp_rounds} lp_rounds x "
                              f"{self.lp_steps} lp_steps = {lp} steps, not less than update_steps="
                              f"{self.update_steps}; raise update_steps above {lp} (or lower lp_rounds / lp_steps)")
        initial = resolve_weights(self.initial, data.domain_names, data.blocks_per_domain(), what="initial")
        rule = AioliRule(k, float(self.eta), lp_rounds=self.lp_rounds, one_hot_factor=float(self.one_hot_factor),
                         ema=None if self.ema is None else float(self.ema), normalize_A=self.normalize_A,
                         diagonal=self.diagonal)
        return Aioli(data, run, initial, rule, self.update_steps, self.lp_steps, self.prior_steps, self.delay)
