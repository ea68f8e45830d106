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


