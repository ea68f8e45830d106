"""What ``curricula compare`` runs: its settings (light: the command line builds its help from them without importing
torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from curricula.errors import ConfigError

FIXED = ("uniform", "token_proportional")
PIPELINED = ("doremi", "doremi_online")
DEFAULT_METHODS = ("uniform", "token_proportional", "doremi", "doremi_online", "odm", "ado", "aioli", "lfr")
FORWARD_COST = 1 / 3  # a forward pass's share of a training step (forward + backward)


@dataclass
class CompareConfig:
    """What ``curricula compare`` runs (every field is a command-line option)."""

    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 400  # total compute per method, in optimizer steps of the global batch
    batch_size: int = 16  # per device
    learning_rate: float = 2e-3
    model: dict = field(default_factory=lambda: {"n_layer": 2, "n_embd": 128, "n_head": 4})
    eval_blocks: int = 512  # held-out blocks for the report's evaluations (an equal share of every domain)
    eval_every: int = 50  # steps between evaluations (the curves)
    mixing_eval_blocks: int = 256  # held-out blocks methods that learn from validation loss see (disjoint)
    reference_fraction: float = 0.25  # of the budget: DoReMi's reference run
    proxy_fraction: float = 0.25  # of the budget: DoReMi's proxy run
    training: dict = field(default_factory=dict)  # further TrainingArguments for every run (e.g. bf16 on a GPU)
    method_params: dict = field(default_factory=dict)  # {method: {recipe key: value}}, over the budget's defaults

    def __post_init__(self):
        for key in ("steps", "batch_size", "eval_blocks", "eval_every", "mixing_eval_blocks"):
            v = getattr(self, key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"compare: --{key.replace('_', '-')} {v!r} must be a positive integer")
        if not 0 < self.reference_fraction < 1 or not 0 < self.proxy_fraction < 1 \
                or self.reference_fraction + self.proxy_fraction >= 1:
            raise ConfigError("compare: --reference-fraction and --proxy-fraction must be in (0, 1) and leave the main "
                              f"run a share of the budget (got {self.reference_fraction} + {self.proxy_fraction})")
        if not self.seeds:
            raise ConfigError("compare: give at least one seed (--seeds 0 1 2)")
        if len(set(self.methods)) != len(self.methods):
            raise ConfigError(f"compare: --methods {self.methods} repeats a method")
        unknown = sorted(set(self.method_params) - set(self.methods))
        if unknown or not all(isinstance(v, dict) for v in self.method_params.values()):
            raise ConfigError(f"compare: --method-params must map methods being compared to their recipe keys, e.g. "
                              f"'{{odm: {{warmup_steps: 40}}}}' (got {sorted(self.method_params)}; not compared: {unknown})")


#: the horizons (in steps) the online mixers' published settings were made for: a shorter budget scales their
#: step counts by budget / horizon (ODM: its 2,000-step warm-up is a few per cent of a Pile run; ADO: the 124M/1B
#: Pile runs, 60 k steps; Aioli: the Pythia-160M runs, 5,000 steps)
HORIZONS = {"odm": 50_000, "ado": 60_000, "aioli": 5_000}


def budget_params(method: str, budget: int, domains: int) -> dict:
    """The online mixers' step counts scaled to a budget shorter than their papers' runs (an explicit
    ``method_params`` entry wins): the same schedule in proportion, so a short comparison sees each method work."""
    if method not in HORIZONS or budget >= HORIZONS[method]:
        return {}
    f = budget / HORIZONS[method]
    if method == "odm":
        return {"warmup_steps": max(1, round(2000 * f))}
    if method == "ado":
        # a smoothing window of at least 11 steps (it must fill before the policy starts), fit points every step, and
        # a cheaper grid of L-BFGS starts keep the refits in proportion to the run
        window = max(11, round(101 * f) | 1)
        return {"savgol_window": window, "point_stride": max(1, round(10 * f)),
                "ignore_steps": max(window, round(1000 * f)), "start_step": max(window, round(500 * f)),
                "update_interval": max(50, round(1000 * f)), "fit_starts": 64, "fit_lag": max(1, round(100 * f))}
    # aioli: a round's perturbation sweep over every domain (one sweep of 2-step segments), the rest exploiting
    return {"lp_rounds": 1, "lp_steps": 2, "update_steps": max(round(250 * f), 2 * domains + 10)}


