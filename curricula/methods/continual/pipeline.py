"""The continual-pretraining recipe (``method: continual``): dataset stages D0 -> D1 -> ..., their LR schedules and
replay. The runner is ``hf_trainer_ext.pipelines.continual.run_continual``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields

from curricula.errors import ConfigError
from curricula.methods.registry import register_pipeline


class ContinualError(ConfigError):
    """A continual recipe that cannot run; the message says how to fix it."""


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def check_name(name: str, what: str = "stage") -> str:
    """A stage or variant name becomes a folder under ``--out``: no path separators, no ``..``, nothing hidden."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ContinualError(
            f"{what} name {name!r} cannot be a folder name under --out: use letters, digits and _ . + - (not "
            "starting with a dot, no '/', no '..'), e.g. 'de' or 'stage-1'"
        )
    return name


@dataclass
class Stage:
    """One dataset of the sequence. ``steps: 0`` marks data the starting model (``model_name_or_path``) already knows,
    e.g. a stand-in for a pretrained model's own corpus: it is not trained on, but every later stage can replay it
    (all of its blocks: which ones the model saw is unknown) and its validation set shows forgetting."""

    name: str
    packed: str
    steps: int
    schedule: dict | None = None  # a curricula schedule; default: warmup + cosine to 0.1 x max over the stage
    replay: float = 0.0  # share of every global batch drawn from the earlier stages' data
    replay_seen_only: bool = True

    def __post_init__(self):
        check_name(self.name)
        if not isinstance(self.steps, int) or isinstance(self.steps, bool) or self.steps < 0:
            raise ContinualError(
                f"stage {self.name!r} has steps={self.steps!r}; give every stage a number of steps >= 0 (0: data "
                "the starting model already knows, only replayed and evaluated)"
            )
        if not 0.0 <= float(self.replay) < 1.0:
            raise ContinualError(
                f"stage {self.name!r} has replay={self.replay}; the replayed share of a batch must be in [0, 1) "
                "(0.05 = 5 %), since a batch made only of old data would train nothing new"
            )


@register_pipeline("continual")
@dataclass
class ContinualRecipe:
    stages: list[Stage]
    model: dict = field(default_factory=lambda: {"n_layer": 2, "n_embd": 128, "n_head": 4})
    model_name_or_path: str | None = None
    optimizer: str = "keep"  # keep | reset (AdamW moments carried into the next stage, or started anew)
    max_lr: float = 2e-3
    infinite: dict | None = None  # one Infinite schedule over all stages instead of per-stage re-warm/re-decay
    eval_every: int = 50
    max_eval_blocks: int = 256
    variants: dict = field(default_factory=dict)  # {"replay": [0.0, 0.05, 0.25]}: variants of the last stage
    training: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict, **overrides) -> "ContinualRecipe":
        data = {k: v for k, v in dict(data).items() if k != "method"}
        data.update({k: v for k, v in overrides.items() if v is not None})
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ContinualError(f"unknown recipe key(s) {unknown}; valid: {[f.name for f in fields(cls)]}")
        stages = data.get("stages") or []
        if not stages:
            raise ContinualError("the recipe has no stages; list them under stages: with name, packed and steps")
        data = {**data, "stages": [s if isinstance(s, Stage) else Stage(**s) for s in stages]}
        names = [s.name for s in data["stages"]]
        if len(set(names)) != len(names):
            raise ContinualError(f"stage names {names} repeat; give every stage its own name (it is its folder)")
        check_known_stages(data["stages"], data.get("model_name_or_path"))
        if data.get("optimizer", "keep") not in ("keep", "reset"):
            raise ContinualError(f"optimizer={data['optimizer']!r}: use 'keep' or 'reset'")
        unknown_variants = sorted(set(data.get("variants") or {}) - {"replay"})
        if unknown_variants:
            raise ContinualError(f"variants: unknown key(s) {unknown_variants}; only 'replay' can vary")
        return cls(**data)

    def variant_names(self) -> list[tuple[str, float]]:
        """(folder name, replay) of every variant of the last stage."""
        last = self.stages[-1]
        replays = self.variants.get("replay") or [last.replay]
        out = []
        for x in replays:
            Stage(last.name, last.packed, last.steps, replay=x)  # validate the replay share
            out.append((check_name(f"{last.name}-replay{int(round(100 * x))}", "variant"), float(x)))
        return out


def known_stage_names(stages: list[Stage]) -> list[str]:
    """The ``steps: 0`` stages: data the starting model already knows (replayed and evaluated, never trained)."""
    return [s.name for s in stages if s.steps == 0]


def check_known_stages(stages: list[Stage], model_name_or_path: str | None) -> None:
    """``steps: 0`` stages stand for what a pretrained model learnt before this run: they come first, and only then."""
    known = known_stage_names(stages)
    if not known:
        return
    if model_name_or_path is None:
        raise ContinualError(
            f"stage(s) {known} have steps: 0 (data the starting model already knows), but the recipe trains a new "
            "model; set model_name_or_path to the pretrained model, or give those stages steps"
        )
    first_trained = next((i for i, s in enumerate(stages) if s.steps > 0), None)
    if first_trained is None or any(s.steps == 0 for s in stages[first_trained:]):
        raise ContinualError(
            f"stages {[f'{s.name}: {s.steps}' for s in stages]}: steps: 0 stages (data the starting model already "
            "knows) must all come before the first trained stage, and the last stage must train"
        )


def stage_schedule(recipe: ContinualRecipe, index: int) -> dict:
    stage = recipe.stages[index]
    if recipe.infinite is not None:
        offset = sum(s.steps for s in recipe.stages[:index])
        inner = {"type": "infinite", "max_lr": recipe.max_lr, **recipe.infinite}
        return {"type": "offset", "schedule": inner, "offset": offset}
    return stage.schedule or {"type": "warmup_cosine", "max_lr": recipe.max_lr, "total_steps": stage.steps}
