"""DoReMi's proxy run (Xie et al. 2023, Algorithm 1) on the seam: Group DRO over domains against a reference.

Each optimizer step the trainer hands over, per domain and over the global batch, the summed per-token clipped excess
loss ``max(l_proxy - l_ref, 0)`` and the token count; ``GroupDROWeights.update`` (``curricula/curriculum/doremi.py``)
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

from curricula.curriculum.doremi import DoReMiConfig, GroupDROWeights, weights_json
from curricula.errors import ConfigError
from curricula.methods.base import Curriculum, DataInfo, MethodConfig, RunInfo, StepStats, register
from curricula.methods.mixture import FixedMixture, resolve_weights

OUT_DIR = "doremi"


class WeightsHistory:
    """Per step: alpha, its running average and the per-domain excess (numpy rows; saved as .npy, never pickled)."""

    def __init__(self, n_domains: int):
        self.k = n_domains
        self.steps = np.zeros(0, dtype=np.int64)
        self.weights = np.zeros((0, n_domains))
        self.average = np.zeros((0, n_domains))
        self.excess = np.zeros((0, n_domains))

    def append(self, step: int, dro: GroupDROWeights) -> None:
        self.steps = np.append(self.steps, np.int64(step))
        self.weights = np.vstack([self.weights, dro.weights[None]])
        self.average = np.vstack([self.average, dro.average[None]])
        self.excess = np.vstack([self.excess, dro.excess[None]])

    def __len__(self) -> int:
        return int(self.steps.size)

    def rows(self) -> list[dict]:
        return [{"step": int(s), "weights": w.tolist(), "average": a.tolist(), "excess": e.tolist()}
                for s, w, a, e in zip(self.steps, self.weights, self.average, self.excess)]

    def state(self, prefix: str = "history") -> dict[str, np.ndarray]:
        return {f"{prefix}_steps": self.steps, f"{prefix}_weights": self.weights,
                f"{prefix}_average": self.average, f"{prefix}_excess": self.excess}

    def load(self, state: Mapping[str, Any], prefix: str = "history") -> None:
        self.steps = np.asarray(state[f"{prefix}_steps"], dtype=np.int64).reshape(-1)
        shape = (-1, self.k)
        self.weights = np.asarray(state[f"{prefix}_weights"], dtype=np.float64).reshape(shape)
        self.average = np.asarray(state[f"{prefix}_average"], dtype=np.float64).reshape(shape)
        self.excess = np.asarray(state[f"{prefix}_excess"], dtype=np.float64).reshape(shape)

    def table(self, names: list[str]):
        import pyarrow as pa

        cols = {"step": pa.array(self.steps, pa.int64())}
        for key, arr in (("weights", self.weights), ("average", self.average), ("excess", self.excess)):
            for d, name in enumerate(names):
                cols[f"{key}/{name}"] = pa.array(arr[:, d], pa.float64())
        return pa.table(cols)


def write_weights_outputs(out_dir: Path, dro: GroupDROWeights, history: WeightsHistory, names: list[str],
                          tokenizer: dict | None, extra: dict, title: str = "domain weights alpha per step"
                          ) -> list[Path]:
    """``domain_weights.json`` (the average of alpha), ``weights_history.parquet``, ``domain_weights.png``."""
    from curricula.report.training_plots import plot_weights
    from curricula.run_layout import write_json, write_parquet

    out = Path(out_dir)
    written = [write_json(out / "domain_weights.json",
                          weights_json(dro.average, names, tokenizer, extra))]
    if len(history):
        written.append(write_parquet(out / "weights_history.parquet", history.table(names)))
        written.append(plot_weights(history.rows(), names, out / "domain_weights.png", title=title))
    return written


class GroupDROProxy(Curriculum):
    name = "group_dro"
    needs = frozenset({"step_stats", "reference"})

    def __init__(self, data: DataInfo, run: RunInfo, sampling: np.ndarray, dro: DoReMiConfig):
        super().__init__(data, run)
        self.sampling = FixedMixture(data, run, sampling)
        self.dro = GroupDROWeights(data.n_domains, dro)
        self.history = WeightsHistory(data.n_domains)

    def epoch_steps(self) -> list[int]:
        return self.sampling.epoch_steps()

    def batches(self, epoch: int) -> Iterator[np.ndarray]:
        return self.sampling.batches(epoch)

    def observe_step(self, stats: StepStats) -> None:
        self.dro.update(stats.excess_sum, stats.tokens)
        self.history.append(stats.step, self.dro)

    def loss_weights(self) -> np.ndarray:
        return self.dro.weights / self.sampling.weights

    def step_metrics(self) -> dict[str, float]:
        return {f"domain_weight/{n}": float(w) for n, w in zip(self.data.domain_names, self.dro.weights)}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "dro": self.dro.state_dict(), **self.history.state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.dro.load_state_dict(state["dro"])
        self.history.load(state)

    def describe(self) -> dict:
        return {"eta": self.dro.config.eta, "smoothing": self.dro.config.smoothing,
                "sampling": dict(zip(self.data.domain_names, self.sampling.weights.tolist()))}

    def write_outputs(self, out_dir: Path, reference: str = "cached", **_) -> list[Path]:
        extra = {"steps": self.dro.steps, "eta": self.dro.config.eta, "smoothing": self.dro.config.smoothing,
                 "sampling_weights": self.sampling.weights.tolist(), "final_weights": self.dro.weights.tolist(),
                 "reference": reference}
        return write_weights_outputs(Path(out_dir) / OUT_DIR, self.dro, self.history, list(self.data.domain_names),
                                     self.data.tokenizer, extra)


@dataclass
class GroupDROOptions:
    """The Group-DRO update's settings, shared by the proxy and the one-run method. ``initial_excess`` and
    ``average_includes_initial`` are the official code's two conventions (``initial_excess: log_vocab`` = log|V|,
    ``average_includes_initial: true``); the defaults start unseen domains at 0 and average the updates only."""

    eta: float = 1.0
    smoothing: float = 1e-3
    initial_excess: Any = 0.0  # a number >= 0, or "log_vocab"
    average_includes_initial: bool = False

    def __post_init__(self):
        if isinstance(self.initial_excess, str) and self.initial_excess != "log_vocab":
            raise ConfigError(f"initial_excess={self.initial_excess!r}: give a number >= 0 or 'log_vocab' (log|V|, "
                              "the official DoReMi code's start)")
        if not isinstance(self.average_includes_initial, bool):
            raise ConfigError(f"average_includes_initial={self.average_includes_initial!r} must be true or false")
        self.dro_config(vocab_size=2)  # check eta, smoothing and a numeric initial_excess now, before any data work

    def dro_config(self, vocab_size: int | None = None, initial_weights: np.ndarray | None = None) -> DoReMiConfig:
        excess = self.initial_excess
        if excess == "log_vocab":
            if not vocab_size:
                raise ConfigError("initial_excess: log_vocab needs the tokenizer's vocab_size in the packed data's "
                                  "tokenizer identity; give a number instead")
            excess = float(np.log(vocab_size))
        try:
            return DoReMiConfig(eta=self.eta, smoothing=self.smoothing, initial_weights=initial_weights,
                                initial_excess=float(excess), average_includes_initial=self.average_includes_initial)
        except (ValueError, TypeError) as err:
            raise ConfigError(str(err)) from None


def require_tokenizer(data: DataInfo, method: str) -> None:
    if not data.tokenizer or "vocab_sha256" not in data.tokenizer:
        raise ConfigError(
            f"{method} needs the packed data's tokenizer identity: DoReMi weights are specific to a tokenizer and "
            "the weights file is stamped with it; pass tokenizer_identity=read_meta(packed)['tokenizer'] (or a "
            "PackedData) to the trainer"
        )


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
