"""DoReMi's proxy run (Xie et al. 2023, Algorithm 1) on the seam: Group DRO over domains against a reference.

Each optimizer step the trainer hands over, per domain and over the global batch, the summed per-token clipped excess
loss ``max(l_proxy - l_ref, 0)`` and the token count; ``GroupDROWeights.update`` (``curricula/methods/doremi/update.py``)
turns them into new weights alpha (exponentiated gradient, smoothed with uniform), identical on every process. The
proxy trains on the alpha-weighted loss: each token of domain d weighs ``alpha_d / p_d`` (``p`` the sampling weights,
so non-uniform sampling is importance-corrected). With gradient accumulation the alpha learned by step t is first
used by step t+1 (the official code's micro-steps likewise use a stale alpha).

DoReMi's output is the running average of alpha over all steps: ``OUT/doremi/domain_weights.json`` (stamped with the
tokenizer identity), with ``weights_history.parquet`` and ``domain_weights.png``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from curricula.methods.doremi.update import (DoReMiConfig, GroupDROOptions, GroupDROWeights,
                                             require_tokenizer)
from curricula.methods.mixture import FixedMixture
from curricula.methods.registry import register
from curricula.methods.seam import Curriculum, DataInfo, MethodConfig, RunInfo, StepStats
from curricula.methods.online import HISTORY_DIR, WeightsLog, write_weights_outputs
from curricula.mixing.weights import resolve_weights

OUT_DIR = "doremi"
LOG_GROUPS = ("weights", "average", "excess")


class GroupDROProxy(Curriculum):
    name = "group_dro"
    needs = frozenset({"step_stats", "reference"})

    def __init__(self, data: DataInfo, run: RunInfo, sampling: np.ndarray, dro: DoReMiConfig):
        super().__init__(data, run)
        self.sampling = FixedMixture(data, run, sampling)
        self.dro = GroupDROWeights(data.n_domains, dro)
        self.history = WeightsLog(LOG_GROUPS, list(data.domain_names))

    def epoch_steps(self) -> list[int]:
        return self.sampling.epoch_steps()

    def batches(self, epoch: int, start: int = 0) -> Iterator[np.ndarray]:
        return self.sampling.batches(epoch, start)

    def stream_state(self, step: int) -> dict:
        return self.sampling.stream_state(step)

    def load_stream_state(self, state: Mapping[str, Any]) -> None:
        self.sampling.load_stream_state(state)

    def observe_step(self, stats: StepStats) -> None:
        self.dro.update(stats.excess_sum, stats.tokens)
        self.history.append(stats.step, weights=self.dro.weights, average=self.dro.average, excess=self.dro.excess)

    def loss_weights(self) -> np.ndarray:
        return self.dro.weights / self.sampling.weights

    def step_metrics(self) -> dict[str, float]:
        return {f"domain_weight/{n}": float(w) for n, w in zip(self.data.domain_names, self.dro.weights)}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "dro": self.dro.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.dro.load_state_dict(state["dro"])

    def describe(self) -> dict:
        return {"eta": self.dro.config.eta, "smoothing": self.dro.config.smoothing,
                "sampling": dict(zip(self.data.domain_names, self.sampling.weights.tolist()))}

    def open_logs(self, log_dir: Path | None, step: int) -> None:
        self.history.open(Path(log_dir) / OUT_DIR / HISTORY_DIR if log_dir is not None else None, step)

    def flush_logs(self) -> None:
        self.history.flush()

    def result(self) -> dict:
        return {"weights": self.dro.average.tolist()}

    def write_outputs(self, out_dir: Path, reference: str = "cached", **_) -> list[Path]:
        extra = {"steps": self.dro.steps, "eta": self.dro.config.eta, "smoothing": self.dro.config.smoothing,
                 "sampling_weights": self.sampling.weights.tolist(), "final_weights": self.dro.weights.tolist(),
                 "reference": reference}
        return write_weights_outputs(Path(out_dir) / OUT_DIR, self.dro.average, self.history,
                                     list(self.data.domain_names), self.data.tokenizer, extra,
                                     title="domain weights alpha per step")


@register("group_dro")
@dataclass
class GroupDROConfig(GroupDROOptions, MethodConfig):
    """``method: group_dro``: DoReMi's proxy. Sampling by ``sampling`` weights (uniform in DoReMi), the loss weighted
    by the Group-DRO weights; needs reference losses (a cache from ``score_reference`` or a live reference model)."""

    sampling: Any = "uniform"

    def with_domain_weights(self, weights: Any) -> "GroupDROConfig":
        return replace(self, sampling=weights)

    def build(self, data: DataInfo, run: RunInfo) -> GroupDROProxy:
        require_tokenizer(data, "group_dro")
        p = resolve_weights(self.sampling, data.domain_names, data.blocks_per_domain(), what="sampling")
        return GroupDROProxy(data, run, p, self.dro_config(data.tokenizer.get("vocab_size")))
