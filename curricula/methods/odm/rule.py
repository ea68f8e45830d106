"""ODM's update rule (Albalak et al., "Efficient Online Data Mixing For Language Model Pre-Training", arXiv
2312.02406), transcribed from the official code. Pure numpy/Python; no torch.

Official code: ``alon-albalak/online-data-mixing`` at commit ``edbfdadb62b0388120b6198b1743067a7cd990dc``
(the README's link to ``SmoothedMeanWeightUpdater`` points at ``aca0acb``; ``git diff aca0acb edbfdad`` touches only
README.md and requirements.txt, so every line cited here is the same at both). Abbreviations:

* **DSU** ``megatron/data/data_sampling_utils.py``
* **TR** ``megatron/training.py``
* **SH** ``scripts/train_1B_ema_0.5smoothing.sh`` (the paper's ODM run)

Which code is ODM: the README names ``SmoothedMeanWeightUpdater`` as "the data mixing implementation described in the
paper"; it is reachable only through ``train_mixed_minibatch`` (TR 915-1335), which calls ``group_update`` (TR 1267).
So the rule is ``SmoothedMeanWeightUpdater.group_update`` (DSU 501-528) under the wrapper's schedule (DSU 302-306,
``UpdateScheduler`` DSU 314-320), fed the per-domain rewards of TR 1255-1262::

    update at iteration t  iff  t > warmup_steps and t % update_frequency == 0          DSU 319-320
    prev_eps = eps ;  eps = min(1/K, sqrt(ln K / (K t)))                                   DSU 503-504
    R_k <- a R_k + (1 - a) exp(r_k)          for every domain k present in the batch      DSU 507-511
    scaling = (1 - K eps) / sum_j R_j prev_eps                                             DSU 515-516
    w_k = R_k prev_eps scaling + eps                                                       DSU 519-521
    pi_k = w_k / sum_j w_j                                                                 DSU 524-526

i.e. pi_k = (1 - K eps_t) R_k / sum_j R_j + eps_t: a smoothed mean of the *exponentiated* loss, normalised linearly
(the softmax line DSU 520 and the plain-mean line DSU 509 are commented out in the official code), with no 1/pi
importance weighting (the paper's Algorithm 1 differs on these three points; this is the code the paper ran).
``t`` is the global step after the optimizer step (TR 1242 increments it before TR 1267). The reward ``r_k`` is the
mean over domain k's micro-batches of their mean token loss (TR 1176, 1227, 1258-1262). Skipped iterations change
nothing (``internal_updates`` is False, DSU 282). Initially ``R = 0``, ``eps = 1/K``, ``prev_eps = None`` and the
sampling weights are the initial weights (DSU 462-472, 285); a domain never seen keeps ``R = 0`` and gets ``eps_t``.

The arithmetic is the official one operation by operation (Python floats, ``math.exp``/``math.sqrt``, sums in domain
order), so for the same rewards the weights are bit-identical (``tests/curricula/methods/odm/test_rule.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

OFFICIAL_REPO = "alon-albalak/online-data-mixing"
OFFICIAL_COMMIT = "edbfdadb62b0388120b6198b1743067a7cd990dc"


class ODMRule:
    """``SmoothedMeanWeightUpdater`` (DSU 455-528) inside its ``DynamicDataSamplingWeight`` wrapper (DSU 243-306).

    State (official names in brackets): ``reward`` [``_estimated_reward``, DSU 466], ``eps`` / ``prev_eps``
    [DSU 469-470], ``weights`` [the updater's weight list, DSU 465, rewritten at DSU 521], ``sampling`` [the wrapper's
    ``weights``: what the next batches are drawn from, DSU 262-263 / 304], ``updates`` (how many updates ran)."""

    def __init__(self, initial: Sequence[float], smoothing: float = 0.5, warmup_steps: int = 2000,
                 update_frequency: int = 1):
        """DSU 456-472 (``__init__``) and DSU 276-294 (the wrapper and its scheduler). ``smoothing`` is the EMA factor
        a (code default 0.9, DSU 460; the paper's run 0.5, SH 10)."""
        self.k = len(initial)
        self.smoothing = float(smoothing)                       # DSU 471
        self.warmup_steps = int(warmup_steps)                   # DSU 316
        self.update_frequency = int(update_frequency)           # DSU 317
        self.weights = [float(w) for w in initial]              # DSU 465
        self.reward = [0.0] * self.k                            # DSU 466
        self.eps: float = 1 / self.k                            # DSU 469
        self.prev_eps: float | None = None                      # DSU 470
        self.sampling = list(self.weights)                      # DSU 252 via 285: the wrapper samples the initial list
        self.updates = 0

    def requires_update(self, iteration: int) -> bool:
        """DSU 319-320 (``UpdateScheduler.requires_update``)."""
        return iteration > self.warmup_steps and iteration % self.update_frequency == 0  # DSU 320

    def group_update(self, domains: Sequence[int], rewards: Sequence[float], iteration: int) -> list[float]:
        """DSU 501-528 (``SmoothedMeanWeightUpdater.group_update``): ``domains`` are the domains present in the batch
        (ascending, as TR 1484 lists them) and ``rewards`` their rewards. Returns the probabilities (DSU 528)."""
        K = self.k
        self.prev_eps = self.eps                                                             # DSU 503
        self.eps = min(1 / K, math.sqrt(math.log(K) / (K * iteration)))                      # DSU 504
        for d, r in zip(domains, rewards):                                                   # DSU 507
            self.reward[d] = self.smoothing * self.reward[d] + (1 - self.smoothing) * math.exp(r)  # DSU 511
        total_estimated_rewards = sum((r * self.prev_eps) for r in self.reward)              # DSU 515
        scaling_factor = (1 - K * self.eps) / total_estimated_rewards                        # DSU 516
        for d in range(K):                                                                   # DSU 519
            self.weights[d] = self.reward[d] * self.prev_eps * scaling_factor + self.eps     # DSU 521
        total_weights = sum(self.weights)                                                    # DSU 524
        probabilities = [self.weights[d] / total_weights for d in range(K)]                  # DSU 525-526
        self.updates += 1
        return probabilities                                                                 # DSU 528

    def observe(self, iteration: int, rewards: np.ndarray, present: np.ndarray) -> np.ndarray:
        """One optimizer step: the wrapper's ``group_update`` (DSU 302-306) with the rewards of the domains
        ``present`` in the global batch (TR 1255-1267). Returns the probabilities the next batches are drawn from."""
        if self.requires_update(iteration):                                                  # DSU 303
            domains = [int(d) for d in np.flatnonzero(present)]
            self.sampling = self.group_update(domains, [float(rewards[d]) for d in domains], iteration)  # DSU 304
        return self.probabilities()

    def probabilities(self) -> np.ndarray:
        """The sampling weights normalised (``random.choices`` normalises them implicitly at TR 1477)."""
        w = np.asarray(self.sampling, dtype=np.float64)
        return w / w.sum()

    # ---- state --------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything for an exact continuation (the official code pickles the whole wrapper, megatron/checkpointing.py
        206-208); numpy arrays and JSON values only."""
        return {"reward": np.asarray(self.reward, dtype=np.float64), "weights": np.asarray(self.weights, np.float64),
                "sampling": np.asarray(self.sampling, dtype=np.float64), "eps": float(self.eps),
                "prev_eps": None if self.prev_eps is None else float(self.prev_eps), "updates": int(self.updates)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.reward = [float(x) for x in np.asarray(state["reward"], dtype=np.float64)]
        self.weights = [float(x) for x in np.asarray(state["weights"], dtype=np.float64)]
        self.sampling = [float(x) for x in np.asarray(state["sampling"], dtype=np.float64)]
        self.eps = float(state["eps"])
        self.prev_eps = None if state["prev_eps"] is None else float(state["prev_eps"])
        self.updates = int(state["updates"])
