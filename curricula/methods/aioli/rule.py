"""Aioli's update rule (Chen et al., "Aioli: A Unified Optimization Framework for Language Model Data Mixing", arXiv
2411.05735), transcribed from the official code. Pure numpy; no torch.

Official code: ``HazyResearch/aioli`` at commit ``a2361123335cb91d68f5ad86a6c85de7a79e6d5e`` (``aioli_trainer.py``
and ``main.py`` unchanged since the first commit ``910d5249``). Abbreviations:

* **AT** ``trainer/aioli_trainer.py`` (``AioliTrainer.train``, ``learn_params_subroutine``)
* **MAIN** ``main.py`` (argument defaults); **SD** ``dataset/slimpj_dataset.py`` (mixture -> batches)

Aioli learns only from per-domain **validation** loss. Training is split into rounds of ``update_steps`` steps; each
round (AT 309-401)::

    loss_0 = validation loss per domain                                                   AT 310-315
    LearnParams (AT 119-191):
        order = lp_rounds random permutations of the k domains, concatenated             AT 123
        for j in order: train lp_steps steps on m_j = (ohf at j, (1-ohf)/(k-1) elsewhere) AT 124-151
                        l = validation loss;  G[:, j] += l_prev - l;  l_prev = l           AT 153-161
        G /= lp_rounds                                                                     AT 164
        A[i] = solve(W, G[i]) with W[j] = m_j (ohf < 1);  diagonal: A_ii = G_ii / ohf      AT 166-191
    normalise: if min A < 0: A -= min A;  A /= sum A (all k^2 entries)                     AT 324-330
    ema:  E = A (round 0) else (1-ema) A + ema E;  w = 1 * exp(eta E.sum(0))               AT 334-340
    none: w = 1 * exp(eta A.sum(0)) (round 0) else w * exp(eta A.sum(0))                   AT 342-345
    train the rest of the round on p = w / sum w                                           AT 350-398, SD 343-345

The EG update restarts from ``weights_init = ones`` (AT 231) whatever the prior. ``AioliRule`` holds the round's
state and does this arithmetic operation by operation as the official code (bit-identical for the same losses and
sweep orders: ``tests/curricula/methods/aioli/test_rule.py``); which step trains which mixture and when losses are
measured is the method's schedule (``method.py``). Two guards the official code lacks, neither reached in normal
use: an all-equal matrix (sum 0 after the shift) stays 0 instead of dividing by 0, and the cumulative weights
(``ema: null``) are rescaled by their maximum when it passes 1e200 (the proportions are unchanged, no overflow).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

OFFICIAL_REPO = "HazyResearch/aioli"
OFFICIAL_COMMIT = "a2361123335cb91d68f5ad86a6c85de7a79e6d5e"
RESCALE_ABOVE = 1e200  # cumulative EG weights (ema: null) are rescaled past this (no overflow after many rounds)


def lp_mixture(k: int, one_hot_factor: float, onehot_idx: int) -> np.ndarray:
    """AT 125-126: ``(1 - ohf) / (k - 1)`` everywhere, ``ohf`` at ``onehot_idx`` (SD 344 then divides by its sum)."""
    weights = np.ones(k) * (1 - one_hot_factor) / (k - 1)   # AT 125
    weights[onehot_idx] = one_hot_factor                    # AT 126
    return weights


def mixing_matrix(k: int, one_hot_factor: float) -> np.ndarray:
    """AT 168-172: row j is the LearnParams mixture ``m_j``."""
    weight_matrix = np.zeros((k, k))                                          # AT 168
    for i in range(k):                                                        # AT 169
        weight_row = np.ones(k) * (1 - one_hot_factor) / (k - 1)              # AT 170
        weight_row[i] = one_hot_factor                                        # AT 171
        weight_matrix[i] = weight_row                                         # AT 172
    return weight_matrix


class AioliRule:
    """One round at a time: ``begin_round(loss_0, order)``, then for each LearnParams segment ``segment_mixture()``
    (what to train) and ``record_lp_eval(loss)`` (the loss after it), then ``finish_round()`` (the new proportions).

    State: ``weights`` (unnormalised EG weights, AT 229 / 340 / 343-345), ``ema_graph`` (AT 336-338), ``rounds``
    (rounds finished, the official ``i``), and within a round ``order`` (AT 123), ``lp_pos`` (segments recorded),
    ``new_graph`` (G accumulated, AT 121 / 160) and ``previous_loss`` (AT 120 / 161)."""

    def __init__(self, k: int, eta: float, lp_rounds: int = 1, one_hot_factor: float = 1.0, ema: float | None = None,
                 normalize_A: bool = False, diagonal: bool = False):
        """Hyper-parameters as ``main.py`` names them (MAIN 226-230 eta, 328-333 lp_rounds, 341-346 one_hot_factor,
        348-353 ema, 307-311 aioli_normalize_A, 355-359 aioli_diagonal)."""
        if k < 2:
            raise ValueError(f"Aioli mixes at least two domains, got k={k}")
        self.k, self.eta, self.lp_rounds = int(k), float(eta), int(lp_rounds)
        self.one_hot_factor = float(one_hot_factor)
        self.ema = None if ema is None else float(ema)
        self.normalize_A, self.diagonal = bool(normalize_A), bool(diagonal)
        self.weights_init = np.ones(self.k)                         # AT 231 (the EG start point, not the prior)
        self.weights = np.ones(self.k)                              # AT 223 / 229
        self.ema_graph: np.ndarray | None = None
        self.rounds = 0
        self.order: np.ndarray | None = None
        self.lp_pos = 0
        self.new_graph = np.zeros((self.k, self.k))
        self.previous_loss = np.zeros(self.k)

    # ---- LearnParams (AT 119-191) -------------------------------------------------------------------------------

    @property
    def segments(self) -> int:
        """LearnParams segments per round: every domain ``lp_rounds`` times (AT 123)."""
        return self.k * self.lp_rounds

    def begin_round(self, loss_0: Sequence[float], order: Sequence[int]) -> None:
        """AT 120-123: ``previous_loss = loss_0``, ``G = 0``, the sweep order (``lp_rounds`` permutations of the
        domains, concatenated; the official code draws them with the global ``np.random``)."""
        order = np.asarray(order, dtype=np.int64).reshape(-1)
        if order.size != self.segments or np.any(np.sort(order.reshape(self.lp_rounds, self.k), axis=1)
                                                 != np.arange(self.k)):
            raise ValueError(f"the sweep order must be {self.lp_rounds} permutations of the {self.k} domains, got "
                             f"{order.tolist()}")
        self.previous_loss = np.array(loss_0, dtype=np.float64).copy()            # AT 120
        self.new_graph = np.zeros((self.k, self.k))                                # AT 121
        self.order = order.copy()                                                  # AT 123
        self.lp_pos = 0

    def segment_mixture(self, segment: int | None = None) -> np.ndarray:
        """The mixture segment ``segment`` (default: the next one) trains on (AT 125-126)."""
        j = int(self.order[self.lp_pos if segment is None else segment])
        return lp_mixture(self.k, self.one_hot_factor, j)

    def record_lp_eval(self, new_loss: Sequence[float]) -> None:
        """AT 160-161: column ``onehot_idx`` gains ``previous_loss - new_loss``; ``previous_loss = new_loss``
        (consecutive differences, not differences against ``loss_0``)."""
        if self.order is None or self.lp_pos >= self.segments:
            raise ValueError("record_lp_eval outside a round's LearnParams segments; call begin_round first")
        onehot_idx = int(self.order[self.lp_pos])
        new_loss = np.array(new_loss, dtype=np.float64)
        self.new_graph[:, onehot_idx] += self.previous_loss - new_loss             # AT 160
        self.previous_loss = new_loss                                              # AT 161
        self.lp_pos += 1

    def learned_graph(self) -> np.ndarray:
        """AT 164-191: G averaged over the sweeps, de-mixed from the smoothed one-hots."""
        new_graph = self.new_graph / self.lp_rounds                                # AT 164
        if self.one_hot_factor != 1 and not self.diagonal:                         # AT 166
            weight_matrix = mixing_matrix(self.k, self.one_hot_factor)             # AT 168-172
            A = np.zeros((self.k, self.k))                                         # AT 174
            for i, row in enumerate(new_graph):                                    # AT 175
                A[i] = np.linalg.solve(weight_matrix, row)                         # AT 176
            new_graph = A                                                          # AT 178
        elif self.one_hot_factor != 1 and self.diagonal:                           # AT 181
            A = np.zeros((self.k, self.k))                                         # AT 184
            for i in range(self.k):                                                # AT 185
                A[i, i] = new_graph[i, i] / self.one_hot_factor                    # AT 186
            new_graph = A                                                          # AT 188
        return new_graph                                                           # AT 191

    # ---- the weight update (AT 318-350) -------------------------------------------------------------------------

    def finish_round(self) -> tuple[np.ndarray, np.ndarray]:
        """After the last segment: the round's matrix A as the official code keeps it in ``all_graphs`` (AT 318,
        normalised in place at AT 324-330) and the new proportions ``p = w / sum w`` (AT 334-350, SD 343-345)."""
        if self.order is None or self.lp_pos != self.segments:
            raise ValueError(f"finish_round after {self.lp_pos} of {self.segments} LearnParams segments")
        graph = self.learned_graph()
        if self.normalize_A:                                                       # AT 324
            min_entry = graph.min()                                                # AT 325
            if min_entry < 0:                                                      # AT 326
                graph -= min_entry                                                 # AT 327
            total = graph.sum()
            if total != 0:  # (guard: the official code divides by 0 for an all-equal matrix)
                graph /= total                                                     # AT 330
        if self.ema is not None:                                                   # AT 334
            if self.rounds == 0:                                                   # AT 335
                self.ema_graph = graph                                             # AT 336
            else:
                self.ema_graph = (1 - self.ema) * graph + self.ema * self.ema_graph  # AT 338
            self.weights = np.multiply(self.weights_init, np.exp(self.eta * self.ema_graph.sum(axis=0)))  # AT 340
        else:
            if self.rounds == 0:                                                   # AT 342
                self.weights = np.multiply(self.weights_init, np.exp(self.eta * graph.sum(axis=0)))  # AT 343
            else:
                self.weights = np.multiply(self.weights, np.exp(self.eta * graph.sum(axis=0)))       # AT 345
            if self.weights.max() > RESCALE_ABOVE:  # (guard: no overflow of the cumulative product)
                self.weights = self.weights / self.weights.max()
        self.rounds += 1
        self.order = None
        return graph.copy(), self.proportions()

    def proportions(self) -> np.ndarray:
        """SD 343-345 (``set_proportions``, rule 'mixture'): ``p = w / sum w``."""
        return self.weights / np.sum(self.weights)

    # ---- state --------------------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Numpy arrays and JSON values (the official code checkpoints none of it: TU 135-145, AT 385)."""
        return {"weights": self.weights.copy(), "ema_graph": None if self.ema_graph is None else self.ema_graph.copy(),
                "rounds": int(self.rounds), "order": None if self.order is None else self.order.copy(),
                "lp_pos": int(self.lp_pos), "new_graph": self.new_graph.copy(),
                "previous_loss": self.previous_loss.copy()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        k = self.k
        self.weights = np.array(state["weights"], dtype=np.float64).reshape(k)
        self.ema_graph = None if state["ema_graph"] is None else np.array(state["ema_graph"], np.float64).reshape(k, k)
        self.rounds = int(state["rounds"])
        self.order = None if state["order"] is None else np.array(state["order"], dtype=np.int64).reshape(-1)
        self.lp_pos = int(state["lp_pos"])
        self.new_graph = np.array(state["new_graph"], dtype=np.float64).reshape(k, k)
        self.previous_loss = np.array(state["previous_loss"], dtype=np.float64).reshape(k)
