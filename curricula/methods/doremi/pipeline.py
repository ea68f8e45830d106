"""The DoReMi pipeline's recipe (``method: doremi``): what to train, for how long, with which weights.

``mode: proxy`` (the paper): round r trains a reference on round r's weights, caches its per-token losses, trains a
Group-DRO proxy (``method: group_dro``) whose averaged weights are round r+1's; then the main model on the final
weights. ``mode: online`` (one run): the reference on the baseline weights, its cache, then the main model learns the
weights itself while training (``method: doremi_online``): no proxy, no rounds.
The runner is ``hf_trainer_ext.pipelines.doremi.run_doremi``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from curricula.errors import ConfigError
from curricula.methods.doremi.update import GroupDROOptions
from curricula.methods.registry import register_pipeline
from curricula.mixing.weights import resolve_weights

MODES = ("proxy", "online")


@register_pipeline("doremi")
@dataclass
class DoReMiRecipe:
    """``curricula/recipes/doremi.yaml`` / ``doremi_online.yaml``. ``training`` holds TrainingArguments shared by
    every run."""

    domains: list[str] | None = None  # the domains the data must have (all of the packed data's if None)
    baseline_weights: Any = "uniform"  # uniform | token_proportional | a list in domain order
    mode: str = "proxy"  # proxy (reference -> proxy -> main, iterated) | online (reference -> one main run)
    rounds: int = 1
    stop_l1: float = 0.0  # stop iterating when the L1 change of the weights falls below this
    eta: float = 1.0
    smoothing: float = 1e-3
    initial_excess: Any = 0.0  # official DoReMi code: log_vocab (an unseen domain's lambda starts at log|V|)
    average_includes_initial: bool = False  # official DoReMi code: true (the initial weights are one term of the mean)
    sample_from: str = "current"  # online mode: draw from alpha (current) or its running average
    reference: str = "cached"  # cached | live
    reference_steps: int = 200
    proxy_steps: int = 200
    main_steps: int = 200
    run_main: bool = True
    model: dict = field(default_factory=lambda: {"n_layer": 2, "n_embd": 128, "n_head": 4})
    training: dict = field(default_factory=dict)
    main_training: dict = field(default_factory=dict)  # TrainingArguments of the main run only (e.g. eval_steps)
    max_eval_blocks: int = 512

    def dro_options(self) -> dict:
        """The Group-DRO settings the proxy (or the one-run main model) is built with."""
        return {"eta": self.eta, "smoothing": self.smoothing, "initial_excess": self.initial_excess,
                "average_includes_initial": self.average_includes_initial}

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"doremi recipe: mode={self.mode!r}; use one of {list(MODES)}")
        if self.reference not in ("cached", "live"):
            raise ConfigError(f"reference={self.reference!r}: use 'cached' (score once) or 'live' (a forward per step)")
        GroupDROOptions(**self.dro_options())  # eta, smoothing and the official-code options checked now
        if self.mode == "online" and self.reference != "cached":
            raise ConfigError("mode: online needs reference: cached (the main run reads the reference's cached losses)")
        for key in ("rounds", "reference_steps", "proxy_steps", "main_steps"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"doremi recipe: {key}={v!r} must be a positive integer")

    @classmethod
    def from_dict(cls, data: dict, **overrides) -> "DoReMiRecipe":
        data = {k: v for k, v in dict(data or {}).items() if k != "method"}
        data.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"doremi recipe: unknown key(s) {unknown}; valid keys: {[f.name for f in fields(cls)]}")
        return cls(**data)


def baseline_weights(spec, meta: dict) -> np.ndarray:
    """Round 0's weights: uniform, token-proportional or a list. Token-proportional means by the training blocks as
    packed (every block holds block_size tokens), as a mixture's sampler resolves it: a corpus capped per domain
    (``--max-blocks-per-domain``) has the capped shares, not the source's."""
    names = meta["domain_names"]
    blocks = np.array([meta["splits"]["train"]["domains"][n]["blocks"] for n in names], dtype=np.float64)
    return resolve_weights(spec, names, blocks, what="baseline_weights")
